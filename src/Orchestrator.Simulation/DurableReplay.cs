using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain.Ledger;
using Orchestrator.Simulation.Traces;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Orchestrator.Simulation;

/// <summary>
/// <c>simulate --durable</c>: the same trace through the scheduler actor on SQLite, one request at a time in event
/// order (arrival: CreateVm; departure: DeleteVm then ConfirmDeleted, as a host agent would confirm), and checks that
/// it placed every VM where the in-memory replay did.
/// </summary>
internal static class DurableReplay
{
    public static async Task<SimulateCommand.DurableFigures> RunAsync(Trace trace, SimulationSettings s, ReplayResult inMemory, CancellationToken ct)
    {
        await using var durable = DurableScheduler.Create(null, s.Strategy);
        await durable.RegisterHostsAsync(s.Hosts, s.HostCpus, s.HostMemoryMiB);
        var events = new List<(long Time, int Kind, TraceVm Vm)>();
        foreach (var vm in trace.Vms)
        {
            events.Add((vm.Arrival, 1, vm));
            if (vm.Departure is { } d && d <= trace.End)
            {
                events.Add((d, 0, vm));
            }
        }

        events.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : a.Kind != b.Kind ? a.Kind.CompareTo(b.Kind) : a.Vm.Id.CompareTo(b.Vm.Id));
        var latencies = new List<double>(trace.Vms.Count);
        var hosts = new Dictionary<int, int>();
        int placed = 0, rejected = 0;
        var wall = Stopwatch.StartNew();
        foreach (var (_, kind, vm) in events)
        {
            ct.ThrowIfCancellationRequested();
            var create = DurableScheduler.Create(vm.Id, vm.Vcpus, vm.MemoryMiB);
            if (kind == 0)
            {
                await durable.AskAsync(new LedgerCommands.DeleteVm(create.Tenant, create.Spec.Name));
                await durable.AskAsync(new LedgerCommands.ConfirmDeleted(create.NewId));
                continue;
            }

            var t0 = Stopwatch.GetTimestamp();
            var reply = await durable.AskAsync(create);
            latencies.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            if (reply is SchedulerReplies.VmAccepted { Vm.Host: { } host })
            {
                placed++;
                hosts[vm.Id] = int.Parse(host.Value.AsSpan("sim-".Length), System.Globalization.CultureInfo.InvariantCulture);
            }
            else
            {
                rejected++;
            }
        }

        wall.Stop();
        latencies.Sort();
        var same = inMemory.Placements is null
            || trace.Vms.Select((vm, i) => (vm, i)).All(t => inMemory.Placements[t.i] == hosts.GetValueOrDefault(t.vm.Id, -1));
        double P(double p) => latencies.Count == 0 ? 0 : latencies[Math.Clamp((int)Math.Ceiling(p * latencies.Count) - 1, 0, latencies.Count - 1)];
        return new SimulateCommand.DurableFigures(trace.Vms.Count, placed, rejected, Math.Round(events.Count / wall.Elapsed.TotalSeconds),
            Math.Round(P(0.5), 4), Math.Round(P(0.99), 4), Math.Round(P(1.0), 3), same);
    }
}
