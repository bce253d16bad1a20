using System.Security.Cryptography;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Contracts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>A tenant's webhooks: register (members), list, delete, and the status of their deliveries.</summary>
public static class WebhookEndpoints
{
    public static RouteGroupBuilder MapWebhooks(this RouteGroupBuilder v1, IdempotencyCache idempotency)
    {
        v1.MapPost("/webhooks", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            // Checked here as well as in the ledger: a long list of bad names never travels to the scheduler.
            var (body, error) = await ReadBodyAsync<CreateWebhookRequest>(request, ct, b => b.Url is null
                ? Required(("url", b.Url))
                : WebhookRecord.Validate(b.Url, b.Events ?? [], LedgerState.EventTypeNames));
            if (error is not null)
            {
                return error;
            }

            var (id, url, events) = (NewId("wh"), body!.Url!, body.Events ?? []);
            var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            var reply = await AskAsync<object>(scheduler, new LedgerCommands.CreateWebhook(id, Acting(request.HttpContext), url, secret, events), ct);
            return JsonOrRefusal<SchedulerReplies.WebhookCreated>(reply, _ => new CreatedWebhookDto(id, url, events, secret),
                StatusCodes.Status201Created);
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateWebhookRequest>("application/json").Produces<CreatedWebhookDto>(StatusCodes.Status201Created);

        v1.MapGet("/webhooks", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.WebhookList>(scheduler, new SchedulerQueries.ListWebhooks(Acting(http)), ct);
            return Results.Json(list.Webhooks.Select(w => w.ToDto()).ToList(), Json);
        });

        v1.MapDelete("/webhooks/{id}", async (string id, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var reply = await AskAsync<object>(scheduler, new LedgerCommands.DeleteWebhook(Acting(http), id), ct);
            return NoContentOrRefusal(reply);
        }).RequireWrite();

        v1.MapGet("/webhooks/{id}/deliveries", async (string id, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var tenant = Acting(http);
            var list = await AskAsync<SchedulerReplies.WebhookList>(scheduler, new SchedulerQueries.ListWebhooks(tenant), ct);
            if (list.Webhooks.All(w => w.Id != id))
            {
                return Problem(StatusCodes.Status404NotFound, "not found", $"no webhook '{Shorten(id)}'");
            }

            var deliveries = await AskAsync<WebhookProtocol.Deliveries>(scheduler, new WebhookProtocol.GetDeliveries(tenant, id), ct);
            return Results.Json(deliveries.Items, Json);
        });

        return v1;
    }
}
