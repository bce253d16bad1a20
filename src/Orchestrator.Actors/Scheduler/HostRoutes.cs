using Orchestrator.Actors.Consoles;
using Akka.Actor;
using Orchestrator.Domain;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The scheduler's way to each host: the agent that registered for it last, and whether the member it lives on can be
/// reached now (which the ledger does not journal). A host is its <see cref="HostId"/> here; the agent's address is the
/// host-loss detector's business. What is asked of a host on a client's behalf goes through here, answered to the client.
/// </summary>
internal sealed class HostRoutes
{
    private readonly Dictionary<HostId, IActorRef> _agents = [];

    /// <returns>whether this agent is new for the host (the detector must watch it).</returns>
    public bool Register(HostId host, IActorRef agent)
    {
        if (_agents.TryGetValue(host, out var known) && known.Equals(agent))
        {
            return false;
        }

        _agents[host] = agent;
        return true;
    }

    /// <summary>This agent of the host is gone (one that registered since stays).</summary>
    public void Gone(HostId host, IActorRef agent)
    {
        if (_agents.TryGetValue(host, out var known) && known.Equals(agent))
        {
            _agents.Remove(host);
            Unreachable = Unreachable.Remove(host);
        }
    }

    public void Reachable(HostId host, bool reachable)
    {
        // A fresh set each time: the ledger's rules hold the one they were given.
        Unreachable = reachable ? Unreachable.Remove(host) : Unreachable.Add(host);
    }

    /// <summary>The hosts the failure detector cannot reach now.</summary>
    public System.Collections.Immutable.ImmutableHashSet<HostId> Unreachable { get; private set; } = [];

    public IActorRef? AgentOf(HostId? host) => host is { } id ? _agents.GetValueOrDefault(id) : null;

    /// <summary>The record as the ledger has it now, with its host's live details when the host answers in time.</summary>
    public void ShowVm(VmRecord? vm, IActorRef asker)
    {
        if (AgentOf(vm?.Host) is { } agent)
        {
            agent.Ask<VmRuntime>(new HostAgentCommands.GetVmRuntime(vm!.Id), SchedulerQueries.ShowVm.RuntimeTimeout)
                .ContinueWith(asked => new SchedulerReplies.VmShown(vm, asked.IsCompletedSuccessfully ? asked.Result : null), TaskScheduler.Default)
                .PipeTo(asker);
        }
        else
        {
            asker.Tell(new SchedulerReplies.VmShown(vm, vm is null ? null : VmRuntime.None(vm.Id)));
        }
    }

    /// <summary>Pauses or resumes a running VM on its host, which answers the asker.</summary>
    public void SetPaused(VmRecord? vm, bool paused, IActorRef asker)
    {
        if (vm is null)
        {
            asker.Tell(new SchedulerReplies.VmFound(null));
        }
        else if (vm.Status is not (VmStatus.Running or VmStatus.Ready) || AgentOf(vm.Host) is not { } agent)
        {
            asker.Tell(new VmPauseResult(vm.Id, false, $"the VM is {vm.Status}, not running"));
        }
        else
        {
            agent.Tell(new HostAgentCommands.SetPaused(vm.Id, paused), asker);
        }
    }

    /// <summary>
    /// Sends a console session on to the VM's host, whose console actor answers the session (which then talks to it
    /// directly); another tenant's VM is a missing one.
    /// </summary>
    public void AttachConsole(VmRecord? vm, ConsoleCommands.Attach attach, IActorRef session)
    {
        if (vm is null)
        {
            session.Tell(new ConsoleReplies.Refused(true, $"no VM named '{attach.Name}'"));
        }
        else if (vm.Status is not (VmStatus.Running or VmStatus.Ready) || AgentOf(vm.Host) is not { } agent)
        {
            session.Tell(new ConsoleReplies.Refused(false, $"the VM is {vm.Status}, not running"));
        }
        else
        {
            agent.Tell(new ConsoleCommands.AttachVm(vm.Id, attach.CanWrite, attach.Force), session);
        }
    }

    /// <summary>The ledger says Up or Down; the failure detector adds Unreachable, which is not worth a journal entry.</summary>
    public HostRecord WithReachability(HostRecord host) =>
        host.State == HostState.Up && Unreachable.Contains(host.Id) ? host with { State = HostState.Unreachable } : host;
}
