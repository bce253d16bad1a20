using System.Globalization;

namespace Orchestrator.Simulation.Traces;

/// <summary>
/// Reads Azure Public Dataset V1 arrivals as processed by huaweicloud/trace_generation_rnn: <c>v1.X.txt</c> has one
/// line per 300-second bin, <c>&lt;seconds&gt; f,f,|,f,|</c> (a letter per VM, <c>|</c> ends a tenant's batch);
/// <c>v1.X.c*.txt</c> beside it has the lifetimes token for token (<c>U&lt;bin&gt;</c> ended, <c>C&lt;bin&gt;</c> still
/// running at the cut); <c>flav_map.txt</c> maps letters to vCPUs and GB; <c>v1.interval_map.txt</c> gives each
/// lifetime bin's lower edge in seconds.
/// </summary>
/// <remarks>
/// A lifetime bin is a range; a VM is given the middle of its bin (the last, open-ended bin: its lower edge), so the
/// replay is deterministic. A VM still running at the cut never departs.
/// </remarks>
public static class AzureV1TraceReader
{
    public const int BinSeconds = 300;

    public static Trace Read(string arrivalsPath)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(arrivalsPath))!;
        var stem = Path.GetFileNameWithoutExtension(arrivalsPath); // v1.test
        var lifetimes = Directory.GetFiles(dir, stem + ".c*.txt").OrderBy(p => p, StringComparer.Ordinal).FirstOrDefault()
            ?? throw new FileNotFoundException($"no lifetime file {stem}.c*.txt beside {arrivalsPath} (the train split has none)");
        var flavours = ReadFlavours(Path.Combine(dir, "flav_map.txt"));
        var bins = ReadIntervals(Path.Combine(dir, "v1.interval_map.txt"));
        using var arrivals = new StreamReader(arrivalsPath);
        using var ends = new StreamReader(lifetimes);
        return Read(arrivals, arrivalsPath, ends, lifetimes, flavours, bins);
    }

    /// <summary>Letter → (vCPUs, memory MiB), from lines <c>vcpus,memory_GB letter</c>.</summary>
    public static IReadOnlyDictionary<string, (int Vcpus, long MemoryMiB)> ReadFlavours(string path)
    {
        var map = new Dictionary<string, (int, long)>(StringComparer.Ordinal);
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var size = parts.Length == 2 ? parts[0].Split(',') : [];
            if (size.Length != 2 || !int.TryParse(size[0], NumberStyles.None, CultureInfo.InvariantCulture, out var vcpus) || vcpus <= 0
                || !double.TryParse(size[1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var gb) || gb <= 0)
            {
                throw new TraceFormatException(path, number, $"expected 'vcpus,memory_GB letter', got '{line}'");
            }

            map[parts[1]] = (vcpus, (long)Math.Round(gb * 1024));
        }

        return map;
    }

    /// <summary>The lower edge in seconds of each lifetime bin, from lines <c>&lt;seconds&gt; &lt;bin&gt;</c>.</summary>
    public static IReadOnlyList<long> ReadIntervals(string path)
    {
        var lower = new List<long>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var bin) || bin > lower.Count)
            {
                throw new TraceFormatException(path, number, $"expected '<seconds> <bin>' with bins in order, got '{line}'");
            }

            if (bin == lower.Count)
            {
                lower.Add(seconds);
            }
        }

        return lower;
    }

    public static Trace Read(
        TextReader arrivals, string arrivalsName, TextReader lifetimes, string lifetimesName,
        IReadOnlyDictionary<string, (int Vcpus, long MemoryMiB)> flavours, IReadOnlyList<long> binLowerEdges)
    {
        var vms = new List<TraceVm>();
        var number = 0;
        long first = long.MaxValue, last = long.MinValue;
        while (arrivals.ReadLine() is { } line)
        {
            number++;
            var ends = lifetimes.ReadLine()
                ?? throw new TraceFormatException(lifetimesName, number, $"missing: {arrivalsName} has a line {number}");
            if (string.IsNullOrWhiteSpace(line) && string.IsNullOrWhiteSpace(ends))
            {
                continue;
            }

            var (time, tokens) = Split(line, arrivalsName, number);
            var (endTime, endTokens) = Split(ends, lifetimesName, number);
            if (endTime != time || endTokens.Length != tokens.Length)
            {
                throw new TraceFormatException(lifetimesName, number,
                    $"does not match {arrivalsName}:{number} ({endTokens.Length} tokens at {endTime} s against {tokens.Length} at {time} s)");
            }

            first = Math.Min(first, time);
            last = Math.Max(last, time);
            for (var i = 0; i < tokens.Length; i++)
            {
                var token = tokens[i];
                if (token == "|")
                {
                    if (endTokens[i] != "|")
                    {
                        throw new TraceFormatException(lifetimesName, number, $"token {i + 1} is '{endTokens[i]}' where the arrivals end a batch");
                    }

                    continue;
                }

                if (!flavours.TryGetValue(token, out var flavour))
                {
                    throw new TraceFormatException(arrivalsName, number, $"token {i + 1}: unknown flavour '{token}'");
                }

                vms.Add(new TraceVm(vms.Count, time, Departure(time, endTokens[i], binLowerEdges, lifetimesName, number, i),
                    flavour.Vcpus, flavour.MemoryMiB));
            }
        }

        if (lifetimes.ReadLine() is { } extra && !string.IsNullOrWhiteSpace(extra))
        {
            throw new TraceFormatException(lifetimesName, number + 1, $"has more lines than {arrivalsName}");
        }

        if (vms.Count == 0)
        {
            return new Trace(arrivalsName, TraceFormat.AzureV1, "s", 1, vms, 0, 0, null);
        }

        return new Trace(arrivalsName, TraceFormat.AzureV1, "s", 1, vms, first, last + BinSeconds, null);
    }

    private static (long Time, string[] Tokens) Split(string line, string name, int number)
    {
        var space = line.IndexOf(' ');
        var head = space < 0 ? line : line[..space];
        if (!long.TryParse(head, NumberStyles.None, CultureInfo.InvariantCulture, out var time))
        {
            throw new TraceFormatException(name, number, $"expected '<seconds> tokens', got '{Shorten(line)}'");
        }

        var tokens = space < 0 ? [] : line[(space + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return (time, tokens);
    }

    private static long? Departure(long arrival, string token, IReadOnlyList<long> lower, string name, int number, int i)
    {
        if (token.Length < 2 || token[0] is not ('U' or 'C')
            || !int.TryParse(token.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var bin) || bin >= lower.Count)
        {
            throw new TraceFormatException(name, number, $"token {i + 1}: expected U<bin> or C<bin> with a bin below {lower.Count}, got '{token}'");
        }

        if (token[0] == 'C')
        {
            return null;
        }

        var lifetime = bin + 1 < lower.Count ? (lower[bin] + lower[bin + 1]) / 2 : lower[bin];
        return arrival + Math.Max(1, lifetime);
    }

    private static string Shorten(string line) => line.Length <= 60 ? line : line[..60] + "…";
}
