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

    /// <summary>
    /// The most often a tenant's schedule may fire: a rule acts on every VM it selects, so a per-second schedule is a
    /// flood of journaled events. An admin (the operator) may schedule more often; its rules still count against the
    /// tenant's request budget.
    /// </summary>
    public static readonly TimeSpan MinScheduleInterval = TimeSpan.FromMinutes(1);

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

    /// <summary>
    /// The shortest time between two successive runs of <paramref name="cron"/>, counted by Cronos over its occurrences
    /// in the day that starts at the minute of its first run after <paramref name="after"/> (at most 1,000 of them);
    /// null when it runs at most once in that day. Whether it is under a minute is exact: a schedule that fires twice
    /// within a minute does so in every minute it fires in, the first included.
    /// </summary>
    public static TimeSpan? ShortestInterval(CronExpression cron, DateTimeOffset after)
    {
        if (cron.GetNextOccurrence(after.UtcDateTime, TimeZoneInfo.Utc) is not { } first)
        {
            return null;
        }

        var minute = new DateTime(first.Ticks - first.Ticks % TimeSpan.TicksPerMinute, DateTimeKind.Utc);
        TimeSpan? shortest = null;
        DateTime? previous = null;
        foreach (var at in cron.GetOccurrences(minute, minute.AddDays(1), TimeZoneInfo.Utc).Take(1000))
        {
            if (previous is { } p && (shortest is null || at - p < shortest))
            {
                shortest = at - p;
            }

            previous = at;
        }

        return shortest;
    }

    /// <param name="now">when the rule is created: where the schedule's runs are counted from.</param>
    /// <param name="anyFrequency">an admin's rule: its schedule may fire more often than <see cref="MinScheduleInterval"/>.</param>
    public static IEnumerable<FieldError> Validate(string? name, string? onEvent, int count, TimeSpan within, string? schedule,
        IReadOnlyDictionary<string, string>? selector, IReadOnlySet<string> eventTypes, DateTimeOffset now = default, bool anyFrequency = false)
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
        else if (schedule is not null && !anyFrequency && ShortestInterval(ParseCron(schedule)!, now) is { } shortest && shortest < MinScheduleInterval)
        {
            yield return new FieldError("schedule",
                $"runs as often as every {shortest.TotalSeconds:0} s; a schedule may run at most once a minute (only an admin may schedule more often)");
        }

        foreach (var error in VmLabels.Validate(selector ?? VmLabels.None))
        {
            yield return error with { Field = "selector" + error.Field["labels".Length..] };
        }
    }
}
