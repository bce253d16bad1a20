// What the ledger says, as metrics: gauges read from the scheduler's latest persisted state, counters from its events.
using System.Diagnostics.Metrics;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Telemetry;

/// <summary>
/// The scheduler hands over each persisted state (a reference to an immutable record, so the hand-over costs nothing)
/// and each persisted event; a scrape counts from the latest state, on the scraping thread. Only the node that runs
/// the scheduler has a state to report: the others export no ledger gauges.
/// </summary>
public static class LedgerMetrics
{
    private static LedgerState? _latest;

    static LedgerMetrics() => OrchestratorMetrics.ObserveLedger(VmsByState, HostsByState, HostVcpus, HostMemory, VmEntitled);

    /// <summary>The scheduler's persisted state, now.</summary>
    public static void Publish(LedgerState state) => Volatile.Write(ref _latest, state);

    /// <summary>The scheduler stopped (its node left, or handed the singleton on): its state is no longer this node's to report.</summary>
    public static void Withdraw(LedgerState state) => Interlocked.CompareExchange(ref _latest, null, state);

    /// <summary>Counts what one persisted event says happened; <paramref name="before"/> is the VM's record before it, if any.</summary>
    public static void Persisted(ILedgerEvent evt, VmRecord? before, bool byHostLoss)
    {
        switch (evt)
        {
            // A first boot: never ready before, never restarted, on its first placement.
            case VmReady ready when before is { ReadyAt: null, Restarts: 0 } vm && ready.Epoch.Value == 1:
                OrchestratorMetrics.CreateToReady.Record(Math.Max(0, (ready.At - vm.CreatedAt).TotalSeconds));
                break;
            case VmRestarting:
                OrchestratorMetrics.VmRestarts.Add(1);
                break;
            case VmPlaced when byHostLoss:
                OrchestratorMetrics.VmFailovers.Add(1);
                break;
        }
    }

    private static IEnumerable<Measurement<long>> VmsByState()
    {
        if (Volatile.Read(ref _latest) is not { } state)
        {
            return [];
        }

        return state.Vms.Values
            .GroupBy(v => (v.Status, v.Tenant))
            .Select(g => new Measurement<long>(g.Count(),
                new KeyValuePair<string, object?>("state", g.Key.Status.ToString()), new KeyValuePair<string, object?>("tenant", g.Key.Tenant.Value)));
    }

    private static IEnumerable<Measurement<long>> HostsByState() =>
        Volatile.Read(ref _latest) is { } state
            ? state.Hosts.Values.GroupBy(h => h.State).Select(g => new Measurement<long>(g.Count(), new KeyValuePair<string, object?>("state", g.Key.ToString())))
            : [];

    private static IEnumerable<Measurement<long>> HostVcpus() => PerHost(h => h.Cpus, h => h.AllocatedVcpus);

    private static IEnumerable<Measurement<long>> HostMemory() => PerHost(h => h.MemoryMiB * 1024 * 1024, h => h.AllocatedMemoryMiB * 1024 * 1024);

    // Only VMs with an entitlement: those the shares keeper computed for, on hosts that run them.
    private static IEnumerable<Measurement<long>> VmEntitled() =>
        Volatile.Read(ref _latest) is { } state
            ? state.Vms.Values.Where(v => v.EntitledCpuMillicores is not null).Select(v => new Measurement<long>(v.EntitledCpuMillicores!.Value,
                new KeyValuePair<string, object?>("vm", v.Id.Compact), new KeyValuePair<string, object?>("host", v.Host?.Value)))
            : [];

    private static IEnumerable<Measurement<long>> PerHost(Func<HostRecord, long> capacity, Func<HostRecord, long> allocated)
    {
        if (Volatile.Read(ref _latest) is not { } state)
        {
            yield break;
        }

        foreach (var host in state.Hosts.Values)
        {
            var id = new KeyValuePair<string, object?>("host", host.Id.Value);
            yield return new Measurement<long>(capacity(host), id, new KeyValuePair<string, object?>("kind", "capacity"));
            yield return new Measurement<long>(allocated(host), id, new KeyValuePair<string, object?>("kind", "allocated"));
        }
    }
}
