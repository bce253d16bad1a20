using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// What the scheduler's next snapshot holds: the whole ledger, or only the hosts and VMs that changed since the last
/// snapshot that was saved (with every smaller list whole).
/// </summary>
/// <remarks>
/// Why: a whole snapshot of a million VMs is some 80 MiB and a second of work, so it was written only every as many
/// events as the ledger has records, and a scheduler recovering on another node replayed up to that many events: about a
/// million, 25 s. An incremental snapshot costs what changed, so one can be written every snapshot-every events whatever
/// the ledger's size, and recovery replays no more than that. A whole snapshot is written again once the incremental ones
/// since the last hold half as many records as the ledger: recovery then reads at most one and a half ledgers, and the
/// records written per event stay constant. The changes are found by comparing the persisted states before and after each
/// write (<see cref="Orchestrator.Domain.Collections.PersistentHashMap{TKey,TValue}.AddChangedKeys"/>: a few nodes per
/// command), not from the events, so that no event that changes a VM on the side can be missed. A scheduler's first
/// snapshot after it started (or recovered) is whole: the chain it recovered from is merged away, and so is its length,
/// which would otherwise grow across restarts.
/// </remarks>
public sealed class IncrementalSnapshots
{
    private HashSet<VmId> _vms = [];
    private HashSet<HostId> _hosts = [];

    /// <summary>The sequence number of the last snapshot known to be saved; null: none, the next one is whole.</summary>
    private long? _saved;

    /// <summary>Host and VM records in the incremental snapshots since the last whole one.</summary>
    private long _chainRecords;

    /// <summary>The snapshot being saved, with the changes it took (they come back should it fail).</summary>
    private Pending? _pending;

    private sealed record Pending(long SequenceNr, bool Whole, long ChainRecords, HashSet<VmId> Vms, HashSet<HostId> Hosts);

    /// <summary>Whether a snapshot is being saved: the next waits for its answer (it builds on it).</summary>
    public bool Saving => _pending is not null;

    /// <summary>The persisted state went from <paramref name="before"/> to <paramref name="after"/>.</summary>
    public void Track(LedgerState before, LedgerState after)
    {
        if (!ReferenceEquals(before.Vms, after.Vms))
        {
            after.Vms.AddChangedKeys(before.Vms, _vms);
        }

        if (!ReferenceEquals(before.Hosts, after.Hosts))
        {
            after.Hosts.AddChangedKeys(before.Hosts, _hosts);
        }
    }

    /// <summary>Records every incremental snapshot writes whole (all but hosts and VMs): one is due only after as many events.</summary>
    public static int WholeListRecords(LedgerState state) =>
        state.Tenants.Count + state.Keys.Count + state.Webhooks.Count + state.Rules.Count + state.Groups.Count + state.Networks.Count
        + state.IdempotencyKeys.Count + state.Volumes.Count + state.Snapshots.Count + state.SecurityGroups.Count + state.Forwards.Count
        + state.Images.Count;

    /// <summary>The snapshot of <paramref name="state"/> (persisted up to <paramref name="sequenceNr"/>) to save now.</summary>
    public LedgerSnapshot Next(LedgerState state, long sequenceNr)
    {
        var chain = _chainRecords + _vms.Count + _hosts.Count;
        var whole = _saved is null || chain * 2 >= state.Vms.Count + state.Hosts.Count;
        LedgerSnapshot snapshot;
        if (whole)
        {
            snapshot = Of(state, state.Hosts.Values.ToList(), state.Vms.Values.ToList(), delta: null);
            chain = 0;
        }
        else
        {
            var hosts = new List<HostRecord>(_hosts.Count);
            var removedHosts = new List<HostId>();
            foreach (var id in _hosts)
            {
                if (state.Hosts.TryGetValue(id, out var host)) { hosts.Add(host); } else { removedHosts.Add(id); }
            }

            var vms = new List<VmRecord>(_vms.Count);
            var removedVms = new List<VmId>();
            foreach (var id in _vms)
            {
                if (state.Vms.TryGetValue(id, out var vm)) { vms.Add(vm); } else { removedVms.Add(id); }
            }

            snapshot = Of(state, hosts, vms, new SnapshotDelta(_saved!.Value, removedHosts, removedVms));
        }

        // The changes now belong to the snapshot being saved; those after it are tracked afresh.
        _pending = new Pending(sequenceNr, whole, chain, _vms, _hosts);
        _vms = [];
        _hosts = [];
        return snapshot;
    }

    /// <summary>The store saved the snapshot at <paramref name="sequenceNr"/>; true when it was whole (those before it can go).</summary>
    public bool Saved(long sequenceNr)
    {
        if (_pending is not { } pending || pending.SequenceNr != sequenceNr)
        {
            return false;
        }

        _pending = null;
        _saved = sequenceNr;
        _chainRecords = pending.ChainRecords;
        return pending.Whole;
    }

    /// <summary>The store failed to save it: its changes go into the next one, which builds on the last one saved.</summary>
    public void Failed(long sequenceNr)
    {
        if (_pending is not { } pending || pending.SequenceNr != sequenceNr)
        {
            return;
        }

        _pending = null;
        pending.Vms.UnionWith(_vms);
        pending.Hosts.UnionWith(_hosts);
        (_vms, _hosts) = (pending.Vms, pending.Hosts);
    }

    private static LedgerSnapshot Of(LedgerState state, List<HostRecord> hosts, List<VmRecord> vms, SnapshotDelta? delta) =>
        new(hosts, vms, state.Tenants.Values.ToList(), state.Keys.Values.ToList(), state.Webhooks.Values.ToList(), state.Rules.Values.ToList(),
            state.Groups.Values.ToList(), state.Networks.Values.ToList(), state.IdempotencyKeys.Values.ToList(), state.Volumes.Values.ToList(),
            state.Snapshots.Values.ToList(), state.SecurityGroups.Values.ToList(), state.Forwards.Values.ToList(), state.Images.Values.ToList(),
            delta);

    /// <summary>
    /// The whole snapshot that <paramref name="increments"/> (oldest first, each building on the one before it) make of
    /// <paramref name="whole"/>: their hosts and VMs set and removed, the latest one's other lists. One pass over the
    /// whole snapshot's records for the chain, not one per increment: a chain after a bulk load is a dozen increments on
    /// a million records. Records keep the whole snapshot's order, new ones after them.
    /// </summary>
    public static LedgerSnapshot Merge(LedgerSnapshot whole, IReadOnlyList<LedgerSnapshot> increments)
    {
        if (increments.Count == 0)
        {
            return whole;
        }

        if (increments[^1].Delta is null)
        {
            return increments[^1];
        }

        return increments[^1] with
        {
            Hosts = Merge(whole.Hosts, increments, s => s.Hosts, d => d.RemovedHosts, h => h.Id),
            Vms = Merge(whole.Vms, increments, s => s.Vms, d => d.RemovedVms, v => v.Id),
            Delta = null,
        };
    }

    private static List<T> Merge<T, TId>(IReadOnlyList<T> whole, IReadOnlyList<LedgerSnapshot> increments, Func<LedgerSnapshot, IReadOnlyList<T>> set,
        Func<SnapshotDelta, IReadOnlyList<TId>> removed, Func<T, TId> id)
        where TId : notnull
    {
        // Each id's last word along the chain: its record, or default for removed.
        var changed = new Dictionary<TId, T?>(increments.Sum(i => set(i).Count + removed(i.Delta!).Count));
        foreach (var increment in increments)
        {
            foreach (var gone in removed(increment.Delta!))
            {
                changed[gone] = default;
            }

            foreach (var record in set(increment))
            {
                changed[id(record)] = record;
            }
        }

        var merged = new List<T>(whole.Count + changed.Count);
        foreach (var record in whole)
        {
            if (!changed.Remove(id(record), out var now))
            {
                merged.Add(record);
            }
            else if (now is not null)
            {
                merged.Add(now);
            }
        }

        foreach (var (_, added) in changed)
        {
            if (added is not null)
            {
                merged.Add(added);
            }
        }

        return merged;
    }
}
