// What this machine offers as a host when the operator configures nothing: its CPUs and memory, read from the kernel.
using System.Globalization;

namespace Orchestrator.Hypervisor;

/// <summary>
/// The machine's processors and memory. The node probes them once and hands them to its settings, which take them
/// where the config gives no <c>orchestrator.host.cpus</c> or <c>memory-mib</c>: settings read config, not the machine.
/// </summary>
public sealed record MachineInventory(int Cpus, long MemoryMiB)
{
    /// <summary>What a MemTotal-less /proc/meminfo is taken for.</summary>
    internal const long FallbackMemoryMiB = 1024;

    /// <summary><see cref="Environment.ProcessorCount"/> (which honours the process's affinity) and MemTotal.</summary>
    public static MachineInventory Probe() => new(Environment.ProcessorCount, ReadMemoryMiB("/proc/meminfo"));

    internal static long ReadMemoryMiB(string meminfoPath)
    {
        foreach (var line in File.ReadLines(meminfoPath))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var kib = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                return kib / 1024;
            }
        }

        return FallbackMemoryMiB;
    }
}
