using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Orchestrator.Domain.Collections;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Ledger;

/// <summary>
/// The ledger's VMs looked up the other ways round: by host, and the Pending ones oldest first. Derived from the VMs
/// alone, so it can always be rebuilt; <see cref="LedgerState"/> keeps it up to date event by event, so a host's
/// registration or a release (which places waiting VMs) never scans a million VMs. (A tenant's VMs are its names'.)
/// </summary>
internal sealed class VmIndex
{
    private VmIndex(
        PersistentHashMap<HostId, HostVmSet> byHost,
        ImmutableSortedSet<VmRecord> pending)
    {
        ByHost = byHost;
        Pending = pending;
    }

    public PersistentHashMap<HostId, HostVmSet> ByHost { get; }

    /// <summary>Pending VMs in the order they are placed: oldest first, then by id (only those two fields are compared).</summary>
    public ImmutableSortedSet<VmRecord> Pending { get; }

    public static VmIndex Build(IEnumerable<VmRecord> vms)
    {
        var byHost = new Dictionary<HostId, List<VmId>>();
        var pending = ImmutableSortedSet.CreateBuilder(PendingOrder.Instance);
        foreach (var vm in vms)
        {
            if (vm.Host is { } host)
            {
                (CollectionsMarshal.GetValueRefOrAddDefault(byHost, host, out _) ??= []).Add(vm.Id);
            }

            if (vm.Status == VmStatus.Pending)
            {
                pending.Add(vm);
            }
        }

        return new VmIndex(
            byHost.ToPersistentHashMap(kv => kv.Key, kv => HostVmSet.Of(kv.Value)),
            pending.ToImmutable());
    }

    /// <summary>The index after one VM changed from <paramref name="before"/> to <paramref name="after"/> (null: absent).</summary>
    public VmIndex Replace(VmRecord? before, VmRecord? after)
    {
        var byHost = ByHost;
        if (before?.Host != after?.Host)
        {
            byHost = Remove(byHost, before?.Host, before?.Id);
            byHost = Add(byHost, after?.Host, after?.Id);
        }

        var pending = Pending;
        if (before?.Status == VmStatus.Pending)
        {
            pending = pending.Remove(before);
        }

        if (after?.Status == VmStatus.Pending)
        {
            pending = pending.Add(after);
        }

        return new VmIndex(byHost, pending);
    }

    private static PersistentHashMap<TKey, HostVmSet> Add<TKey>(
        PersistentHashMap<TKey, HostVmSet> sets, TKey? key, VmId? id)
        where TKey : struct =>
        key is { } k && id is { } vm ? sets.SetItem(k, (sets.GetValueOrDefault(k) ?? HostVmSet.Empty).Add(vm)) : sets;

    private static PersistentHashMap<TKey, HostVmSet> Remove<TKey>(
        PersistentHashMap<TKey, HostVmSet> sets, TKey? key, VmId? id)
        where TKey : struct
    {
        if (key is not { } k || id is not { } vm || !sets.TryGetValue(k, out var set))
        {
            return sets;
        }

        set = set.Remove(vm);
        return set.IsEmpty ? sets.Remove(k) : sets.SetItem(k, set);
    }

    /// <summary>Oldest first, then by id: the order in which waiting VMs get a host.</summary>
    private sealed class PendingOrder : IComparer<VmRecord>
    {
        public static readonly PendingOrder Instance = new();

        public int Compare(VmRecord? x, VmRecord? y)
        {
            var byAge = x!.CreatedAt.CompareTo(y!.CreatedAt);
            return byAge != 0 ? byAge : x.Id.Value.CompareTo(y.Id.Value);
        }
    }
}
