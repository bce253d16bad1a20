using Cronos;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tenants;

public enum RuleAction
{
    /// <summary>Stop the VM (desired state stopped).</summary>
    Stop,

    /// <summary>Start it (desired state running; also revives a VM that gave up or was powered off).</summary>
    Start,

    /// <summary>Re-place it on another host, under a new epoch (the old copy is killed first).</summary>
    Replace,
}

/// <summary>
/// A tenant's automation rule. Triggered either by its VMs' events — <see cref="OnEvent"/> seen <see cref="Count"/>
/// times within <see cref="Within"/> for one VM — or by a cron <see cref="Schedule"/> (UTC; five fields, or six with
/// seconds). Acts on the VMs whose labels include every pair of <see cref="Selector"/> (all of the tenant's when empty).
/// </summary>
public sealed record RuleRecord(
    string Id,
    TenantId Tenant,
    string Name,
    string? OnEvent,
    int Count,
    TimeSpan Within,
    string? Schedule,
    IReadOnlyDictionary<string, string> Selector,
    RuleAction Action,
    DateTimeOffset CreatedAt)
{
    public const int MaxPerTenant = 50;

    public bool Selects(VmSpec spec) => Selector.All(kv => spec.EffectiveLabels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    /// <summary>The next time a scheduled rule fires after <paramref name="after"/>; null for event rules.</summary>
    public DateTimeOffset? NextRun(DateTimeOffset after) =>
        Schedule is null ? null : ParseCron(Schedule)?.GetNextOccurrence(after.UtcDateTime, TimeZoneInfo.Utc) is { } next
            ? new DateTimeOffset(next, TimeSpan.Zero)
            : null;

    public static CronExpression? ParseCron(string text)
    {
        var fields = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        try
        {
            return CronExpression.Parse(text, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        }
        catch (CronFormatException)
        {
            return null;
        }
    }

    public static IEnumerable<FieldError> Validate(string? name, string? onEvent, int count, TimeSpan within, string? schedule,
        IReadOnlyDictionary<string, string>? selector, IReadOnlySet<string> eventTypes)
    {
        if (!VmSpecValidator.IsValidName(name))
        {
            yield return new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter");
        }

        if ((onEvent is null) == (schedule is null))
        {
            yield return new FieldError("on", "give exactly one trigger: an event (on) or a cron schedule (schedule)");
        }

        if (onEvent is not null)
        {
            if (!eventTypes.Contains(onEvent))
            {
                yield return new FieldError("on.event", $"unknown event type '{FieldError.Echo(onEvent)}'");
            }

            if (count is < 1 or > 1000)
            {
                yield return new FieldError("on.count", $"must be between 1 and 1000, was {count}");
            }

            if (within <= TimeSpan.Zero || within > TimeSpan.FromDays(7))
            {
                yield return new FieldError("on.within", "must be more than 0 and at most 7 days");
            }
        }

        // Cronos forgives surrounding whitespace ("0 3 * * *\t"); the schedule kept must be the one checked.
        if (schedule is not null && (schedule.Length > 120 || schedule.Any(c => c is < ' ' or > '~') || schedule != schedule.Trim()
                                     || ParseCron(schedule) is null))
        {
            yield return new FieldError("schedule", "must be a cron expression: 5 fields (minute hour day month weekday) or 6 with seconds first");
        }

        foreach (var error in VmLabels.Validate(selector ?? VmLabels.None))
        {
            yield return error with { Field = "selector" + error.Field["labels".Length..] };
        }
    }
}
