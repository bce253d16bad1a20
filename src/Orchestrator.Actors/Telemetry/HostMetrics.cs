// What this node's host measures of its VMs, as metrics.
using System.Diagnostics.Metrics;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Telemetry;

/// <summary>
/// The host agent hands over its latest CPU windows per VM (an immutable list each report, so the hand-over is a
/// reference); a scrape reads them on its own thread. Labels: the VM's and host's ids.
/// </summary>
public static class HostMetrics
{
    private static Window? _latest;

    static HostMetrics() => OrchestratorMetrics.ObserveHost(VmCpu);

    public static void Publish(HostId host, IReadOnlyList<VmProtocol.Usage> usage) => Volatile.Write(ref _latest, new Window(host, usage));

    private static IEnumerable<Measurement<long>> VmCpu()
    {
        if (Volatile.Read(ref _latest) is not { } latest)
        {
            yield break;
        }

        var host = new KeyValuePair<string, object?>("host", latest.Host.Value);
        foreach (var usage in latest.Usage)
        {
            var vm = new KeyValuePair<string, object?>("vm", usage.VmId.Compact);
            yield return new Measurement<long>(usage.UsedMillicores, vm, host, new KeyValuePair<string, object?>("kind", "used"));
            yield return new Measurement<long>(usage.DemandMillicores, vm, host, new KeyValuePair<string, object?>("kind", "demand"));
            yield return new Measurement<long>(Math.Max(0, usage.DemandMillicores - usage.UsedMillicores), vm, host,
                new KeyValuePair<string, object?>("kind", "wait"));
        }
    }

    private sealed record Window(HostId Host, IReadOnlyList<VmProtocol.Usage> Usage);
}
