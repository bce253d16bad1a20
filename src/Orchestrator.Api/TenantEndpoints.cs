using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

public sealed record QuotaDto(int? Vms, int? Vcpus, long? MemoryMiB)
{
    public TenantQuota ToQuota() => new(Vms, Vcpus, MemoryMiB);

    public static QuotaDto From(TenantQuota q) => new(q.MaxVms, q.MaxVcpus, q.MaxMemoryMiB);
}

public sealed record CreateTenantRequest(string? Id, QuotaDto? Quota);

/// <summary>A tenant's CPU pool on each host (null shares: as much as its VMs' shares together).</summary>
public sealed record PoolDto(int? CpuShares, int? CpuReservationMillicores, int? CpuLimitMillicores)
{
    public TenantCpuPool ToPool() => new(CpuShares, CpuReservationMillicores ?? 0, CpuLimitMillicores);

    public static PoolDto? From(TenantCpuPool? p) => p is null ? null : new(p.Shares, p.ReservationMillicores, p.LimitMillicores);
}

/// <summary><c>quota</c> and <c>pool</c> each replace the tenant's whole quota or pool when given.</summary>
public sealed record UpdateTenantRequest(QuotaDto? Quota, bool? Disabled, PoolDto? Pool = null);

public sealed record CreateKeyRequest(string? Role, string? Name);

/// <summary>A key as listed: never its secret nor the secret's hash.</summary>
public sealed record KeyDto(string KeyId, string Tenant, string Role, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public static KeyDto From(ApiKeyRecord k) => new(k.KeyId, k.Tenant.Value, k.Role.ToWire(), k.Name, k.CreatedAt, k.RevokedAt);
}

/// <summary>A key just issued: the only time <see cref="Key"/> is ever shown.</summary>
public sealed record IssuedKeyDto(string KeyId, string Tenant, string Role, string? Name, string Key);

public sealed record UsageDto(int Vms, int Vcpus, long MemoryMiB);

public sealed record TenantDto(string Id, bool Disabled, QuotaDto Quota, UsageDto Usage, IReadOnlyList<KeyDto>? Keys, PoolDto? Pool)
{
    public static TenantDto From(SchedulerReplies.TenantFound found, bool withKeys) => new(
        found.Tenant!.Id.Value,
        found.Tenant.Disabled,
        QuotaDto.From(found.Tenant.Quota),
        new UsageDto(found.Usage.Vms, found.Usage.Vcpus, found.Usage.MemoryMiB),
        withKeys ? found.Keys.Select(KeyDto.From).ToList() : null,
        PoolDto.From(found.Tenant.Pool));
}

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
                : Results.Json(TenantDto.From(found, withKeys: false), Json);
        });

        v1.MapGet("/tenants", async (IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.TenantList>(scheduler, SchedulerQueries.ListTenants.Instance, ct);
            return Results.Json(list.Tenants.Where(t => t.Tenant is not null).Select(t => TenantDto.From(t, withKeys: false)).ToList(), Json);
        }).RequireAdmin();

        v1.MapPost("/tenants", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateTenantRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            if (body!.Id is null)
            {
                return Invalid([new FieldError("id", "is required")]);
            }

            var tenant = new TenantId(body.Id);
            var reply = await AskAsync<object>(scheduler,
                new LedgerCommands.CreateTenant(tenant, body.Quota?.ToQuota() ?? TenantQuota.Unlimited), ct);
            return await AnswerTenantAsync(scheduler, reply, tenant, StatusCodes.Status201Created, ct);
        }).RequireAdmin().Idempotent(idempotency);

        v1.MapGet("/tenants/{id}", async (string id, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var found = await AskAsync<SchedulerReplies.TenantFound>(scheduler, new SchedulerQueries.GetTenant(new TenantId(id)), ct);
            return found.Tenant is null ? TenantNotFound(id) : Results.Json(TenantDto.From(found, withKeys: true), Json);
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
            return await AnswerTenantAsync(scheduler, reply, tenant, StatusCodes.Status200OK, ct);
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
            return reply switch
            {
                SchedulerReplies.Accepted => Results.Json(new IssuedKeyDto(issued.KeyId, tenant.Value, role.ToWire(), body.Name, issued.Key), Json,
                    statusCode: StatusCodes.Status201Created),
                SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
                _ => Unexpected(reply),
            };
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

    private static async Task<IResult> AnswerTenantAsync(IRequiredActor<SchedulerProxy> scheduler, object reply, TenantId tenant, int status,
        CancellationToken ct)
    {
        if (reply is SchedulerReplies.Refused refused)
        {
            return FromRefusal(refused.Refusal);
        }

        if (reply is not SchedulerReplies.Accepted)
        {
            return Unexpected(reply);
        }

        var found = await AskAsync<SchedulerReplies.TenantFound>(scheduler, new SchedulerQueries.GetTenant(tenant), ct);
        return found.Tenant is null ? TenantNotFound(tenant.Value) : Results.Json(TenantDto.From(found, withKeys: true), Json, statusCode: status);
    }

    private static IResult TenantNotFound(string id) =>
        Problem(StatusCodes.Status404NotFound, "not found", $"no tenant '{Shorten(id)}'");
}
