using System.Globalization;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>Durations as people write them: "90s", "10m", "2h", "1d".</summary>
public static class Durations
{
    /// <summary>
    /// A whole number and a unit. One too long for a <see cref="TimeSpan"/> ("99999999d") reads as
    /// <see cref="TimeSpan.MaxValue"/>, so that the range check of whoever asked names it rather than an overflow.
    /// </summary>
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrEmpty(text) || text.Length > 12 || !char.IsAsciiLetterLower(text[^1])
            || !long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return false;
        }

        long? secondsPerUnit = text[^1] switch
        {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => null,
        };
        if (secondsPerUnit is not { } unit)
        {
            return false;
        }

        // n has at most 11 digits, so n · 86400 fits a long; TimeSpan's own factories throw past its range.
        var seconds = n * unit;
        duration = seconds >= (long)TimeSpan.MaxValue.TotalSeconds ? TimeSpan.MaxValue : TimeSpan.FromSeconds(seconds);
        return true;
    }

    public static string Format(TimeSpan t) =>
        t.TotalDays >= 1 && t.TotalDays % 1 == 0 ? $"{t.TotalDays:0}d"
        : t.TotalHours >= 1 && t.TotalHours % 1 == 0 ? $"{t.TotalHours:0}h"
        : t.TotalMinutes >= 1 && t.TotalMinutes % 1 == 0 ? $"{t.TotalMinutes:0}m"
        : $"{t.TotalSeconds:0}s";
}

/// <summary>A tenant's automation rules: create (members), list, delete.</summary>
public static class RuleEndpoints
{
    public static RouteGroupBuilder MapRules(this RouteGroupBuilder v1, IdempotencyCache idempotency)
    {
        v1.MapPost("/rules", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateRuleRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var errors = new List<FieldError>();
            // Named exactly (in any case): Enum.TryParse would also take "1", " stop" and "stop\n".
            var asked = body!.Action;
            var named = Enum.GetValues<RuleAction>().Where(a => string.Equals(a.ToString(), asked, StringComparison.OrdinalIgnoreCase)).ToList();
            var action = named.Count == 1 ? named[0] : default;
            if (named.Count != 1)
            {
                errors.Add(new FieldError("action", "must be one of stop, start, replace"));
            }

            var within = TimeSpan.FromMinutes(10);
            if (body.On?.Within is { } text && !Durations.TryParse(text, out within))
            {
                errors.Add(new FieldError("on.within", "must be a duration such as 90s, 10m, 2h or 1d"));
            }

            if (errors.Count > 0)
            {
                return Invalid(errors);
            }

            var reply = await AskAsync<object>(scheduler, new LedgerCommands.CreateRule(NewId("rule"), Acting(request.HttpContext), body.Name ?? "",
                body.On?.Event, body.On?.Count ?? 1, within, body.Schedule, body.Selector ?? [], action, request.HttpContext.Principal().IsAdmin), ct);
            return JsonOrRefusal<SchedulerReplies.RuleCreated>(reply, created => created.Rule.ToDto(), StatusCodes.Status201Created);
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateRuleRequest>("application/json").Produces<RuleDto>(StatusCodes.Status201Created);

        v1.MapGet("/rules", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.RuleList>(scheduler, new SchedulerQueries.ListRules(Acting(http)), ct);
            return Results.Json(list.Rules.Select(r => r.ToDto()).ToList(), Json);
        });

        v1.MapDelete("/rules/{id}", async (string id, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var reply = await AskAsync<object>(scheduler, new LedgerCommands.DeleteRule(Acting(http), id), ct);
            return NoContentOrRefusal(reply);
        }).RequireWrite();

        return v1;
    }
}
