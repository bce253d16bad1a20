using System.Globalization;
using System.Text;

namespace Orchestrator.Simulation;

/// <summary>A hand-written SVG line chart: active hosts over time, ours and the baseline, against the lower bound.</summary>
public static class SvgPlot
{
    public sealed record Line(string Label, string Color, IReadOnlyList<double> Values, bool Dashed = false);

    public static string Render(string title, string xLabel, double xStart, double xEnd, IReadOnlyList<Line> lines)
    {
        const int width = 960, height = 480, left = 70, right = 20, top = 40, bottom = 50;
        var plotW = width - left - right;
        var plotH = height - top - bottom;
        var yMax = Math.Max(1, lines.SelectMany(l => l.Values).DefaultIfEmpty(1).Max()) * 1.05;
        var svg = new StringBuilder();
        string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
        svg.AppendLine(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>");
        for (var i = 0; i <= 5; i++)
        {
            var y = top + plotH - plotH * i / 5.0;
            var value = yMax * i / 5;
            svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{F(y)}\" x2=\"{width - right}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>");
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{left - 6}\" y=\"{F(y + 4)}\" text-anchor=\"end\">{F(Math.Round(value))}</text>");
            var x = left + plotW * i / 5.0;
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{F(x)}\" y=\"{height - bottom + 18}\" text-anchor=\"middle\">{F(xStart + (xEnd - xStart) * i / 5)}</text>");
        }

        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{left + plotW / 2}\" y=\"{height - 12}\" text-anchor=\"middle\">{Escape(xLabel)}</text>");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"16\" y=\"{top + plotH / 2}\" transform=\"rotate(-90 16 {top + plotH / 2})\" text-anchor=\"middle\">active hosts</text>");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{left}\" y=\"{top}\" width=\"{plotW}\" height=\"{plotH}\" fill=\"none\" stroke=\"#888\"/>");
        var legendY = top + 16;
        foreach (var line in lines)
        {
            var n = line.Values.Count;
            var points = string.Join(' ', line.Values.Select((v, i) =>
                $"{F(left + plotW * (n <= 1 ? 0 : i / (double)(n - 1)))},{F(top + plotH - plotH * v / yMax)}"));
            var dash = line.Dashed ? " stroke-dasharray=\"6 4\"" : "";
            svg.AppendLine(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{line.Color}\" stroke-width=\"1.5\"{dash} points=\"{points}\"/>");
            svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{left + 12}\" y1=\"{legendY - 4}\" x2=\"{left + 36}\" y2=\"{legendY - 4}\" stroke=\"{line.Color}\" stroke-width=\"2\"{dash}/>");
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{left + 42}\" y=\"{legendY}\">{Escape(line.Label)}</text>");
            legendY += 16;
        }

        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
}
