using Akka.Actor;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The scheduler's side of the tenant networks' VXLAN: the underlay address each host registered with, and the peer
/// table each host was last told. After every change to the ledger it recomputes the tables (<see cref="VxlanFabric"/>)
/// and tells each host whose table changed its whole new one. Not journaled: a new scheduler learns the underlays as the
/// hosts register again, and starts by telling each its table.
/// </summary>
internal sealed class VxlanPublisher
{
    private readonly Dictionary<HostId, string> _underlays = [];
    private readonly Dictionary<HostId, IReadOnlyList<VxlanPeers>> _told = [];

    /// <param name="fresh">a new agent for the host (a restarted node): it is told its table even if unchanged.</param>
    public void Register(HostId host, string? underlay, bool fresh)
    {
        if (underlay is null)
        {
            _underlays.Remove(host);
        }
        else
        {
            _underlays[host] = underlay;
        }

        if (fresh)
        {
            _told.Remove(host);
        }
    }

    /// <summary>Tells every host whose table is not the one it was last told. Nothing to compute without networked VMs.</summary>
    public void Publish(LedgerState state, HostRoutes hosts)
    {
        if (state.Leases.IsEmpty && _told.Count == 0)
        {
            return;
        }

        var tables = VxlanFabric.Compute(state, _underlays);
        foreach (var host in tables.Keys.Concat(_told.Keys).Distinct().ToList())
        {
            var table = tables.GetValueOrDefault(host) ?? [];
            if ((_told.ContainsKey(host) && VxlanFabric.Same(_told[host], table)) || hosts.AgentOf(host) is not { } agent)
            {
                continue;
            }

            agent.Tell(new HostAgentCommands.SetNetworkPeers(table), ActorRefs.NoSender);
            if (table.Count == 0)
            {
                _told.Remove(host);
            }
            else
            {
                _told[host] = table;
            }
        }
    }
}
