using Akka.Actor;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// Who asked <see cref="SchedulerQueries.AwaitDeletion"/>, by the VM being deleted; each is answered once the ledger no
/// longer has that VM (its host confirmed the delete, or the host was lost). Kept in memory only: after a scheduler
/// failover the askers, which time out, ask the new one again.
/// </summary>
internal sealed class DeletionWaiters
{
    private readonly Dictionary<VmId, List<(IActorRef Asker, SchedulerQueries.AwaitDeletion Query)>> _waiting = [];

    /// <summary>Answers at once unless the ledger has a VM of that name being deleted.</summary>
    public void Add(LedgerState state, SchedulerQueries.AwaitDeletion query, IActorRef asker)
    {
        if (state.FindVm(query.Tenant, query.Name) is not { Status: Domain.Vms.VmStatus.Deleting } vm)
        {
            asker.Tell(new SchedulerReplies.DeletionSettled(query.Tenant, query.Name));
            return;
        }

        if (!_waiting.TryGetValue(vm.Id, out var askers))
        {
            _waiting[vm.Id] = askers = [];
        }

        askers.Add((asker, query));
    }

    /// <summary>Answers those waiting for a VM the ledger no longer has.</summary>
    public void AnswerGone(LedgerState state)
    {
        foreach (var gone in _waiting.Keys.Where(id => !state.Vms.ContainsKey(id)).ToList())
        {
            foreach (var (asker, query) in _waiting[gone])
            {
                asker.Tell(new SchedulerReplies.DeletionSettled(query.Tenant, query.Name));
            }

            _waiting.Remove(gone);
        }
    }
}
