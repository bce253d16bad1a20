using System.CommandLine;
using System.Globalization;

namespace Orchestrator.Tools;

/// <summary>Checks the tools' numeric options share: out of range is a usage error naming the option and its range.</summary>
internal static class ToolOptions
{
    /// <param name="why">said after the range, when the bounds need a reason.</param>
    public static Option<int> Within(this Option<int> option, int min, int max, string? why = null, string? unit = null) =>
        Checked(option, v => v >= min && v <= max, Range(option, min.ToString(CultureInfo.InvariantCulture), max.ToString(CultureInfo.InvariantCulture), why, unit));

    public static Option<double> Within(this Option<double> option, double min, double max, string? why = null, string? unit = null) =>
        Checked(option, v => v >= min && v <= max, Range(option, min.ToString(CultureInfo.InvariantCulture), max.ToString(CultureInfo.InvariantCulture), why, unit));

    private static string Range(Option option, string min, string max, string? why, string? unit) =>
        $"{option.Name} must be between {min} and {max}{(unit is null ? "" : $" {unit}")}{(why is null ? "" : $": {why}")}";

    private static Option<T> Checked<T>(Option<T> option, Func<T, bool> holds, string error)
    {
        option.Validators.Add(r =>
        {
            if (!holds(r.GetValueOrDefault<T>()!))
            {
                r.AddError(error);
            }
        });
        return option;
    }
}
