using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// The scheduler's snapshots, whole and incremental, without Akka: a ledger's history with snapshots taken, failed and
/// saved along it, and restarts from them; what the store holds always loads back to the ledger at that snapshot.
/// </summary>
public class IncrementalSnapshotsTests
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);
    private static readonly DateTimeOffset At = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);

    /// <summary>A store of serialized snapshots by sequence number, as the snapshot store keeps them.</summary>
    private sealed class Store
    {
        public SortedDictionary<long, byte[]> Rows { get; } = [];

        /// <summary>The latest row merged back along its chain to a whole snapshot, as the snapshot store loads it.</summary>
        public (long SequenceNr, LedgerSnapshot Whole)? Load()
        {
            if (Rows.Count == 0)
            {
                return null;
            }

            var latest = Rows.Keys.Last();
            var chain = new List<LedgerSnapshot>();
            var at = LedgerSnapshotFormat.Read(Rows[latest]);
            while (at.Delta is { } delta)
            {
                chain.Add(at);
                at = LedgerSnapshotFormat.Read(Rows[delta.PreviousSequenceNr]); // throws when a link is gone: the test fails
            }

            chain.Reverse();
            return (latest, IncrementalSnapshots.Merge(at, chain));
        }
    }

    [Property(MaxTest = 150)]
    public Property What_the_store_holds_loads_back_to_the_ledger_at_its_snapshot() =>
        Prop.ForAll(Gen.ListOf(Gen.Choose(0, 9).Zip(Gen.Choose(0, 11))).ToArbitrary(), ops =>
        {
            var state = LedgerState.Empty;
            var events = new List<ILedgerEvent>();
            var snapshots = new IncrementalSnapshots();
            var store = new Store();
            var expected = new Dictionary<long, string>(); // the ledger's hosts and VMs at each snapshot taken
            var wholes = 0;
            var increments = 0;
            var restarted = false;

            void Run(ILedgerCommand command)
            {
                var decision = state.Decide(command, Rules, At);
                var before = state;
                foreach (var evt in decision.Events)
                {
                    state = state.Apply(evt);
                    events.Add(evt);
                }

                snapshots.Track(before, state);
            }

            foreach (var (op, n) in ops)
            {
                var vm = $"vm-{n}";
                switch (op)
                {
                    case 0 or 1:
                        Run(new LedgerCommands.CreateVm(TenantId.System, new VmSpec(vm, 1, 256, "demo"), new VmId(new Guid(n + 1, 0, 0, new byte[8]))));
                        break;
                    case 2:
                        Run(new LedgerCommands.RegisterHost(new HostId($"h{n % 3}"), 2, 1024, "qemu"));
                        break;
                    case 3:
                        Run(new LedgerCommands.DeleteVm(TenantId.System, vm));
                        if (state.FindVm(TenantId.System, vm) is { } deleting)
                        {
                            Run(new LedgerCommands.ConfirmDeleted(deleting.Id));
                        }

                        break;
                    case 4:
                        Run(new LedgerCommands.StopVm(TenantId.System, vm));
                        break;
                    case 5:
                        Run(new LedgerCommands.LoseHost(new HostId($"h{n % 3}")));
                        break;
                    case 6 or 7 when !snapshots.Saving:
                        var seq = (long)events.Count;
                        if (store.Rows.ContainsKey(seq))
                        {
                            break; // no event since the last: the scheduler takes none either
                        }

                        var snapshot = snapshots.Next(state, seq);
                        if (restarted && snapshot.Delta is not null)
                        {
                            return false.Label("the first snapshot after a restart builds on the chain it recovered from");
                        }

                        restarted = false;
                        _ = snapshot.Delta is null ? wholes++ : increments++;
                        expected[seq] = HostsAndVms(snapshot.Delta is null ? snapshot : WholeOf(state));
                        store.Rows[seq] = LedgerSnapshotFormat.Write(snapshot);
                        if (op == 7 && n % 3 == 0)
                        {
                            store.Rows.Remove(seq); // the store failed it
                            snapshots.Failed(seq);
                        }
                        else if (snapshots.Saved(seq))
                        {
                            foreach (var older in store.Rows.Keys.Where(k => k < seq).ToList())
                            {
                                store.Rows.Remove(older); // a whole one: the scheduler deletes those before it
                            }
                        }

                        break;
                    case 8:
                        // A restart: recovery from the store's latest snapshot and the journal after it.
                        snapshots = new IncrementalSnapshots();
                        restarted = true;
                        state = LedgerState.Empty;
                        var from = 0;
                        if (store.Load() is var (at, whole))
                        {
                            state = LedgerState.FromRecords(whole.Hosts, whole.Vms, whole.Tenants, whole.Keys, whole.Webhooks, whole.Rules);
                            from = (int)at;
                        }

                        foreach (var evt in events.Skip(from))
                        {
                            state = state.Apply(evt);
                        }

                        break;
                }

                if (store.Load() is var (latest, loaded) && HostsAndVms(loaded) != expected[latest])
                {
                    return false.Label($"after op {op} {n}: the snapshot at {latest} loads back another ledger");
                }
            }

            return true.ToProperty().Collect($"{(wholes > 0 ? "whole" : "")}{(increments > 0 ? "+incremental" : "")}");
        });

    [Fact]
    public void Incremental_snapshots_hold_what_changed_until_the_changes_are_half_the_ledger()
    {
        var state = LedgerState.Empty;
        var snapshots = new IncrementalSnapshots();
        void Run(ILedgerCommand command)
        {
            var before = state;
            foreach (var evt in state.Decide(command, Rules, At).Events)
            {
                state = state.Apply(evt);
            }

            snapshots.Track(before, state);
        }

        Run(new LedgerCommands.RegisterHost(new HostId("h1"), 64, 65536, "qemu"));
        for (var i = 0; i < 20; i++)
        {
            Run(new LedgerCommands.CreateVm(TenantId.System, new VmSpec($"vm-{i}", 1, 256, "demo"), VmId.New()));
        }

        var first = snapshots.Next(state, 10);
        Assert.Null(first.Delta); // nothing saved yet: whole
        Assert.Equal(20, first.Vms.Count);
        Assert.True(snapshots.Saving);
        Assert.True(snapshots.Saved(10));

        Run(new LedgerCommands.StopVm(TenantId.System, "vm-3"));
        Run(new LedgerCommands.DeleteVm(TenantId.System, "vm-4"));
        var gone = state.FindVm(TenantId.System, "vm-4")!.Id;
        Run(new LedgerCommands.ConfirmDeleted(gone));
        var second = snapshots.Next(state, 20);
        Assert.Equal(10, second.Delta!.PreviousSequenceNr);
        Assert.Equal([gone], second.Delta.RemovedVms);
        Assert.Empty(second.Delta.RemovedHosts);
        Assert.Equal(["vm-3"], second.Vms.Select(v => v.Spec.Name));
        Assert.Equal(["h1"], second.Hosts.Select(h => h.Id.Value)); // the host gave back vm-4's share

        snapshots.Failed(20);
        Run(new LedgerCommands.StopVm(TenantId.System, "vm-5"));
        var retried = snapshots.Next(state, 25);
        Assert.Equal(10, retried.Delta!.PreviousSequenceNr); // builds on the last one saved, with the failed one's changes
        Assert.Equal(["vm-3", "vm-5"], retried.Vms.Select(v => v.Spec.Name).Order());
        Assert.False(snapshots.Saved(25));

        for (var i = 5; i < 15; i++)
        {
            Run(new LedgerCommands.StopVm(TenantId.System, $"vm-{i}"));
        }

        Assert.Null(snapshots.Next(state, 40).Delta); // the chain would hold more than half the ledger: whole again
        Assert.True(snapshots.Saved(40));
    }

    /// <summary>A whole snapshot of the state, as the scheduler would take it.</summary>
    private static LedgerSnapshot WholeOf(LedgerState state) => new(state.Hosts.Values.ToList(), state.Vms.Values.ToList());

    private static string HostsAndVms(LedgerSnapshot s) => System.Text.Json.JsonSerializer.Serialize(
        new { Hosts = s.Hosts.OrderBy(h => h.Id.Value), Vms = s.Vms.OrderBy(v => v.Id.Value) }, OrchestratorSerializer.Json);
}
