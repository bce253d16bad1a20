using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>
/// Tenants and their keys: the operator's (admin keys only), plus <c>GET /v1/tenant</c> for any key to see its own
/// tenant's quota and usage.
/// </summary>
public static class TenantEndpoints
{
    public static RouteGroupBuilder MapTenants(this RouteGroupBuilder v1, ApiAuthenticator auth, IdempotencyCache idempotency)
    {
        v1.MapGet("/tenant", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var principal = http.Principal();
            var found = await AskAsync<SchedulerReplies.TenantFound>(scheduler, new SchedulerQueries.GetTenant(principal.Tenant), ct);
            return found.Tenant is null
                ? Problem(StatusCodes.Status404NotFound, "not found", "this key's tenant is gone")
                : Results.Json(found.ToDto(withKeys: false), Json);
        });

        v1.MapGet("/tenants", async (IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.TenantList>(scheduler, SchedulerQueries.ListTenants.Instance, ct);
            return Results.Json(list.Tenants.Where(t => t.Tenant is not null).Select(t => t.ToDto(withKeys: false)).ToList(), Json);
        }).RequireAdmin();

        v1.MapPost("/tenants", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateTenantRequest>(request, ct, b => Required(("id", b.Id)));
            if (error is not null)
            {
                return error;
            }

            var tenant = new TenantId(body!.Id!);
            var reply = await AskAsync<object>(scheduler,
                new LedgerCommands.CreateTenant(tenant, body.Quota?.ToQuota() ?? TenantQuota.Unlimited), ct);
            return AnswerTenant(reply, tenant, StatusCodes.Status201Created);
        }).RequireAdmin().Idempotent(idempotency);

        v1.MapGet("/tenants/{id}", async (string id, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var found = await AskAsync<SchedulerReplies.TenantFound>(scheduler, new SchedulerQueries.GetTenant(new TenantId(id)), ct);
            return found.Tenant is null ? TenantNotFound(id) : Results.Json(found.ToDto(withKeys: true), Json);
        }).RequireAdmin();

        v1.MapMethods("/tenants/{id}", ["PATCH"], async (string id, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<UpdateTenantRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var tenant = new TenantId(id);
            var reply = await AskAsync<object>(scheduler, new LedgerCommands.UpdateTenant(tenant, body!.Quota?.ToQuota(), body.Disabled, body.Pool?.ToPool()), ct);
            auth.Forget(); // a disabled tenant's keys stop working here at once
            return AnswerTenant(reply, tenant, StatusCodes.Status200OK);
        }).RequireAdmin();

        v1.MapPost("/tenants/{id}/keys", async (string id, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateKeyRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            if (!KeyRoles.TryParse(body!.Role ?? "member", out var role))
            {
                return Invalid([new FieldError("role", "must be one of admin, member, read-only")]);
            }

            var tenant = new TenantId(id);
            var issued = ApiKeys.Issue();
            var reply = await AskAsync<object>(scheduler, new LedgerCommands.IssueKey(issued.KeyId, tenant, role, issued.SecretHash, body.Name), ct);
            return JsonOrRefusal<SchedulerReplies.KeyIssued>(reply, _ => new IssuedKeyDto(issued.KeyId, tenant.Value, role.ToWire(), body.Name, issued.Key),
                StatusCodes.Status201Created);
        }).RequireAdmin().Idempotent(idempotency);

        v1.MapDelete("/tenants/{id}/keys/{keyId}", async (string id, string keyId, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
        {
            var reply = await AskAsync<object>(scheduler, new LedgerCommands.RevokeKey(new TenantId(id), keyId), ct);
            auth.Forget(); // revoked means revoked, here at once
            return NoContentOrRefusal(reply);
        }).RequireAdmin();

        return v1;
    }

    /// <summary>The tenant as the ledger's reply shows it (with its keys), or the refusal.</summary>
    private static IResult AnswerTenant(object reply, TenantId tenant, int status) => reply switch
    {
        SchedulerReplies.TenantAccepted { Tenant: { Tenant: not null } found } => Results.Json(found.ToDto(withKeys: true), Json, statusCode: status),
        SchedulerReplies.TenantAccepted => TenantNotFound(tenant.Value),
        SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
        _ => Unexpected(reply),
    };

    private static IResult TenantNotFound(string id) =>
        Problem(StatusCodes.Status404NotFound, "not found", $"no tenant '{Shorten(id)}'");
}
