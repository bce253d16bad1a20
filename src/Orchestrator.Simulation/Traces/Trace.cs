namespace Orchestrator.Simulation.Traces;

/// <summary>One VM of a trace: when it arrives, when it leaves (null: still running when the trace ends), and its size.</summary>
public readonly record struct TraceVm(int Id, long Arrival, long? Departure, int Vcpus, long MemoryMiB);

public enum TraceFormat
{
    /// <summary>Azure Packing Trace 2020 as temporal bin-packing instances: one dimension, hosts of capacity 100, minutes.</summary>
    Tbpp,

    /// <summary>Azure Public Dataset V1 (2017) arrivals, lifetimes and flavours: vCPUs and memory, seconds.</summary>
    AzureV1,
}

/// <summary>A parsed trace, ready to replay: VMs in arrival order, times in <see cref="TimeUnit"/>.</summary>
/// <param name="Start">Where the replay's time window opens (the first arrival).</param>
/// <param name="End">Where it closes: the last departure (tbpp) or the end of the last arrival bin (Azure V1).</param>
/// <param name="HostCpus">The host size the trace implies (tbpp: its capacity), or null where it gives none.</param>
public sealed record Trace(
    string Path,
    TraceFormat Format,
    string TimeUnit,
    double SecondsPerUnit,
    IReadOnlyList<TraceVm> Vms,
    long Start,
    long End,
    int? HostCpus)
{
    /// <summary>Whether memory is a dimension of this trace (tbpp has CPU only).</summary>
    public bool HasMemory => Format == TraceFormat.AzureV1;
}

/// <summary>A malformed trace: names the file and the 1-based line.</summary>
public sealed class TraceFormatException(string file, int line, string message)
    : FormatException($"{file}:{line}: {message}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
}

public static class TraceReader
{
    /// <summary>Reads a trace, telling the format from the file: Azure V1 arrivals are named v1.*.txt.</summary>
    public static Trace Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no trace file {path}", path);
        }

        return System.IO.Path.GetFileName(path).StartsWith("v1.", StringComparison.Ordinal)
            ? AzureV1TraceReader.Read(path)
            : TbppTraceReader.Read(path);
    }
}
