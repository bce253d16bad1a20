using System.Globalization;

namespace Orchestrator.Contracts;

/// <summary>
/// CPU amounts as people type and read them: "500m" (millicores) or "0.5" (CPUs), the same in the CLI's options and
/// in apply files, so that one refuses what the other refuses.
/// </summary>
public static class CpuAmounts
{
    /// <summary>
    /// False for anything else: empty, over 16 characters, a sign, an exponent, finer than a millicore, over 100,000
    /// CPUs.
    /// </summary>
    public static bool TryParseMillicores(string? text, out int millicores)
    {
        millicores = 0;
        if (string.IsNullOrWhiteSpace(text) || text.Length > 16)
        {
            return false;
        }

        if (text.EndsWith('m'))
        {
            return int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out millicores);
        }

        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var cpus) || cpus > 100_000)
        {
            return false;
        }

        var scaled = cpus * 1000;
        if (scaled != decimal.Truncate(scaled))
        {
            return false; // finer than a millicore
        }

        millicores = (int)scaled;
        return true;
    }

    /// <summary>"1.5 CPU", "0.25 CPU", "2 CPU".</summary>
    public static string Format(long millicores) =>
        (millicores / 1000m).ToString("0.###", CultureInfo.InvariantCulture) + " CPU";
}
