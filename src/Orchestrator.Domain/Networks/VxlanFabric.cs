using System.Collections.Immutable;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Networks;

/// <summary>One network's VXLAN on one host: the underlay addresses of the other hosts that hold a VM of it.</summary>
public sealed record VxlanPeers(int Vni, IReadOnlyList<string> Underlays);

/// <summary>
/// Which host sends a network's frames to which: each network joins, by unicast VXLAN, exactly the hosts that hold one
/// of its VMs (a VM being deleted counts until its host let go; one waiting for a host counts nowhere). Derived from the
/// ledger's placements and the underlay addresses hosts registered, never persisted: the scheduler recomputes it and
/// pushes each host its own table when it changes.
/// </summary>
public static class VxlanFabric
{
    /// <summary>Every host's table: for each network with a VM there, its peers (sorted); hosts with none are absent.</summary>
    /// <param name="underlays">each host's underlay address; a host without one takes part in no VXLAN.</param>
    public static ImmutableDictionary<HostId, IReadOnlyList<VxlanPeers>> Compute(LedgerState state, IReadOnlyDictionary<HostId, string> underlays)
    {
        var tables = new Dictionary<HostId, List<VxlanPeers>>();
        foreach (var (networkId, leases) in state.Leases)
        {
            if (!state.Networks.TryGetValue(networkId, out var network))
            {
                continue;
            }

            var hosts = leases.Addresses.Values
                .Select(vm => state.Vms.GetValueOrDefault(vm)?.Host)
                .OfType<HostId>()
                .Where(h => state.Hosts.TryGetValue(h, out var host) && host.State == HostState.Up)
                .ToHashSet();
            foreach (var host in hosts)
            {
                var peers = hosts.Where(h => h != host).Select(h => underlays.GetValueOrDefault(h)).OfType<string>()
                    .Order(StringComparer.Ordinal).ToList();
                if (!tables.TryGetValue(host, out var table))
                {
                    tables[host] = table = [];
                }

                table.Add(new VxlanPeers(network.Vni, peers));
            }
        }

        return tables.ToImmutableDictionary(t => t.Key, t => (IReadOnlyList<VxlanPeers>)t.Value.OrderBy(p => p.Vni).ToList());
    }

    /// <summary>Whether two tables program the same forwarding entries.</summary>
    public static bool Same(IReadOnlyList<VxlanPeers>? a, IReadOnlyList<VxlanPeers>? b) =>
        (a ?? []).Count == (b ?? []).Count
        && (a ?? []).Zip(b ?? []).All(p => p.First.Vni == p.Second.Vni && p.First.Underlays.SequenceEqual(p.Second.Underlays, StringComparer.Ordinal));
}
