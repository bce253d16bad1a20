// Linux cpu lists ("0-3,5"), as cpuset.cpus and taskset speak them.
using System.Globalization;
using System.Text;

namespace Orchestrator.Domain.Vms;

/// <summary>A set of host CPUs: what a VM or a host is pinned to.</summary>
public static class CpuSet
{
    /// <summary>CPU numbers are limited to 0..MaxCpu (the size of the affinity mask this code uses).</summary>
    public const int MaxCpu = 4095;

    /// <summary>Sorted, distinct CPUs of a list; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static IReadOnlyList<int> Parse(string text) =>
        TryParse(text, out var cpus, out var error) ? cpus : throw new FormatException(error);

    /// <summary>
    /// Parses "0-3,5" (surrounding whitespace allowed, as the kernel writes a trailing newline) into sorted,
    /// distinct CPUs. An empty list is an error: every use here needs at least one CPU.
    /// </summary>
    public static bool TryParse(string? text, out IReadOnlyList<int> cpus, out string? error)
    {
        cpus = [];
        var trimmed = text?.Trim();
        if (string.IsNullOrEmpty(trimmed))
        {
            error = "the cpu list is empty (expected something like \"0-3,5\")";
            return false;
        }

        if (trimmed.Length > 256)
        {
            error = "the cpu list is longer than 256 characters";
            return false;
        }

        var set = new SortedSet<int>();
        foreach (var item in trimmed.Split(','))
        {
            if (item.Length == 0)
            {
                error = $"cpu list '{trimmed}' has an empty item";
                return false;
            }

            var dash = item.IndexOf('-');
            var firstText = dash < 0 ? item : item[..dash];
            var lastText = dash < 0 ? item : item[(dash + 1)..];
            if (!TryCpu(firstText, trimmed, out var first, out error) || !TryCpu(lastText, trimmed, out var last, out error))
            {
                return false;
            }

            if (last < first)
            {
                error = $"range {item} in cpu list '{trimmed}' runs backwards";
                return false;
            }

            for (var cpu = first; cpu <= last; cpu++)
            {
                set.Add(cpu);
            }
        }

        cpus = [.. set];
        error = null;
        return true;
    }

    /// <summary>
    /// Which host CPUs each of a VM's vCPU threads is pinned to, when the VM has a cpuset: one CPU per vCPU while the set
    /// has enough (vCPU i on the set's i-th CPU), else every vCPU may use the whole set. Null: no (valid) cpuset, no pinning.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<int>>? VcpuPins(string? cpuset, int vcpus)
    {
        if (cpuset is null || !TryParse(cpuset, out var cpus, out _))
        {
            return null;
        }

        return Enumerable.Range(0, vcpus)
            .Select(i => cpus.Count >= vcpus ? (IReadOnlyList<int>)[cpus[i]] : cpus)
            .ToList();
    }

    /// <summary>The shortest list for a set of CPUs: "0-3,5"; "" for none.</summary>
    public static string Format(IEnumerable<int> cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        var sorted = new SortedSet<int>();
        foreach (var cpu in cpus)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(cpu, nameof(cpus));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(cpu, MaxCpu, nameof(cpus));
            sorted.Add(cpu);
        }

        var text = new StringBuilder();
        int? start = null;
        var previous = -2;
        foreach (var cpu in sorted)
        {
            if (start is not null && cpu == previous + 1)
            {
                previous = cpu;
                continue;
            }

            AppendRange(text, start, previous);
            start = cpu;
            previous = cpu;
        }

        AppendRange(text, start, previous);
        return text.ToString();
    }

    private static void AppendRange(StringBuilder text, int? start, int end)
    {
        if (start is not { } first)
        {
            return;
        }

        if (text.Length > 0)
        {
            text.Append(',');
        }

        text.Append(first.ToString(CultureInfo.InvariantCulture));
        if (end != first)
        {
            text.Append('-').Append(end.ToString(CultureInfo.InvariantCulture));
        }
    }

    private static bool TryCpu(string text, string list, out int cpu, out string? error)
    {
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out cpu))
        {
            error = text.Length == 0
                ? $"cpu list '{list}' has a range with a missing end"
                : $"'{text}' in cpu list '{list}' is not a CPU number";
            return false;
        }

        if (cpu > MaxCpu)
        {
            error = $"CPU {cpu} in cpu list '{list}' is beyond the highest supported CPU {MaxCpu}";
            return false;
        }

        error = null;
        return true;
    }
}
