using System.Collections.Immutable;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Tenants;

/// <summary>The times one VM's events counted towards one event rule, oldest first.</summary>
public sealed record RuleWindow(string RuleId, VmId VmId, IReadOnlyList<DateTimeOffset> Seen);

/// <summary>
/// What the event rules have counted so far: for each (rule, VM), the times of the matching events still within the
/// rule's window. Immutable, and counted by the time each event was written, not when it is read: the same events
/// counted again from a saved <see cref="Windows"/> (after the scheduler moved) fire the same rules at the same events.
/// </summary>
public sealed class RuleCounts
{
    public static readonly RuleCounts Empty = new(ImmutableDictionary<(string, VmId), ImmutableQueue<DateTimeOffset>>.Empty);

    private readonly ImmutableDictionary<(string Rule, VmId Vm), ImmutableQueue<DateTimeOffset>> _windows;

    private RuleCounts(ImmutableDictionary<(string Rule, VmId Vm), ImmutableQueue<DateTimeOffset>> windows) => _windows = windows;

    /// <summary>The counts as plain records, in a stable order (to save them).</summary>
    public IReadOnlyList<RuleWindow> Windows => _windows
        .OrderBy(kv => kv.Key.Rule, StringComparer.Ordinal).ThenBy(kv => kv.Key.Vm.Value)
        .Select(kv => new RuleWindow(kv.Key.Rule, kv.Key.Vm, kv.Value.ToList()))
        .ToList();

    public static RuleCounts From(IEnumerable<RuleWindow> windows) => new(windows
        .Where(w => w.Seen.Count > 0)
        .ToImmutableDictionary(w => (w.RuleId, w.VmId), w => ImmutableQueue.CreateRange(w.Seen.Order())));

    /// <summary>
    /// Counts <paramref name="evt"/>, written at <paramref name="at"/> for <paramref name="tenant"/>, against the
    /// tenant's event rules on its type; a rule fires when its count is reached within its window, and counts afresh.
    /// A rule's own doing (RuleFired) never counts, and a rule counts only events written since it was created.
    /// </summary>
    public (RuleCounts Counts, IReadOnlyList<RuleRecord> Fired) Count(IEnumerable<RuleRecord> rules, TenantId tenant, ILedgerEvent evt,
        DateTimeOffset at)
    {
        if (evt is not IVmLedgerEvent vmEvent || evt is LedgerEvents.RuleFired)
        {
            return (this, []);
        }

        var type = evt.GetType().Name;
        var windows = _windows;
        var fired = new List<RuleRecord>();
        foreach (var rule in rules.Where(r => r.OnEvent == type && r.Tenant == tenant && r.CreatedAt <= at))
        {
            var key = (rule.Id, vmEvent.VmId);
            var seen = (windows.GetValueOrDefault(key) ?? ImmutableQueue<DateTimeOffset>.Empty).Enqueue(at);
            while (!seen.IsEmpty && at - seen.Peek() > rule.Within)
            {
                seen = seen.Dequeue();
            }

            if (seen.Count() >= rule.Count)
            {
                windows = windows.Remove(key);
                fired.Add(rule);
            }
            else
            {
                windows = windows.SetItem(key, seen);
            }
        }

        return (ReferenceEquals(windows, _windows) ? this : new RuleCounts(windows), fired);
    }

    /// <summary>Forgets the counts of rules no longer among <paramref name="ruleIds"/> (deleted).</summary>
    public RuleCounts Keep(IReadOnlySet<string> ruleIds)
    {
        var gone = _windows.Keys.Where(k => !ruleIds.Contains(k.Rule)).ToList();
        return gone.Count == 0 ? this : new RuleCounts(_windows.RemoveRange(gone));
    }
}
