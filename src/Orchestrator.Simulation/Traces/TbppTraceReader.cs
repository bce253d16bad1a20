using System.Globalization;

namespace Orchestrator.Simulation.Traces;

/// <summary>
/// Reads a temporal bin-packing instance (wotzlaff/tbpp-instances, sampled from Azure's 2020 packing trace):
/// a header <c>n capacity 0 0</c>, then n lines <c>index start end size</c>, tab- or space-separated, in minutes.
/// </summary>
public static class TbppTraceReader
{
    public static Trace Read(string path)
    {
        using var reader = new StreamReader(path);
        return Read(reader, path);
    }

    public static Trace Read(TextReader reader, string name)
    {
        var header = reader.ReadLine() ?? throw new TraceFormatException(name, 1, "empty file: expected the header 'n capacity 0 0'");
        var head = Fields(header);
        if (head.Length != 4 || !TryInt(head[0], out var count) || count < 0 || !TryInt(head[1], out var capacity) || capacity <= 0)
        {
            throw new TraceFormatException(name, 1, $"expected the header 'n capacity 0 0', got '{header}'");
        }

        var vms = new List<TraceVm>(count);
        var seen = new HashSet<int>();
        var number = 1;
        long start = long.MaxValue, end = long.MinValue;
        while (reader.ReadLine() is { } line)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            var f = Fields(line);
            if (f.Length != 4 || !TryInt(f[0], out var index) || !TryLong(f[1], out var arrival) || !TryLong(f[2], out var departure)
                || !TryInt(f[3], out var size))
            {
                throw new TraceFormatException(name, number, $"expected 'index start end size' (four integers), got '{line}'");
            }

            if (arrival < 0 || departure <= arrival)
            {
                throw new TraceFormatException(name, number, $"VM {index}: end {departure} must be after start {arrival} (and start >= 0)");
            }

            if (size <= 0 || size > capacity)
            {
                throw new TraceFormatException(name, number, $"VM {index}: size {size} must be from 1 to the capacity {capacity}");
            }

            if (!seen.Add(index))
            {
                throw new TraceFormatException(name, number, $"VM index {index} appears twice");
            }

            vms.Add(new TraceVm(index, arrival, departure, size, 0));
            start = Math.Min(start, arrival);
            end = Math.Max(end, departure);
        }

        if (vms.Count != count)
        {
            throw new TraceFormatException(name, number, $"the header announces {count} VMs but the file has {vms.Count}");
        }

        vms.Sort((a, b) => a.Arrival != b.Arrival ? a.Arrival.CompareTo(b.Arrival) : a.Id.CompareTo(b.Id));
        return new Trace(name, TraceFormat.Tbpp, "min", 60, vms, vms.Count == 0 ? 0 : start, vms.Count == 0 ? 0 : end, capacity);
    }

    private static string[] Fields(string line) =>
        line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);

    private static bool TryInt(string s, out int value) =>
        int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    private static bool TryLong(string s, out long value) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
}
