using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>Host labels (admin keys) and a tenant's server groups (create, list, show, delete).</summary>
public static class PlacementEndpoints
{
    public static RouteGroupBuilder MapPlacement(this RouteGroupBuilder v1, IdempotencyCache idempotency)
    {
        v1.MapPost("/hosts/{id}/labels", async (string id, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<HostLabelsRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var host = new HostId(id);
            var reply = await AskAsync<object>(scheduler, new PlacementCommands.SetHostLabels(host, body!.Set ?? VmLabels.None, body.Remove ?? []), ct);
            if (reply is SchedulerReplies.Refused refused)
            {
                return FromRefusal(refused.Refusal);
            }

            var list = await AskAsync<SchedulerReplies.HostList>(scheduler, SchedulerQueries.ListHosts.Instance, ct);
            return Results.Json(list.Hosts.First(h => h.Id == host).ToDto(), Json);
        }).RequireAdmin().Accepts<HostLabelsRequest>("application/json").Produces<HostDto>();

        v1.MapPost("/groups", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateGroupRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var errors = new List<FieldError>();
            if (body!.Name is null)
            {
                errors.Add(new FieldError("name", "is required"));
            }

            if (!GroupPolicies.TryParse(body.Policy, out var policy))
            {
                errors.Add(new FieldError("policy", $"must be one of {string.Join(", ", GroupPolicies.Names)}"));
            }

            if (errors.Count > 0)
            {
                return Invalid(errors);
            }

            var tenant = Acting(request.HttpContext);
            var reply = await AskAsync<object>(scheduler, new PlacementCommands.CreateGroup(tenant, body.Name!, policy), ct);
            return reply is SchedulerReplies.Refused refused
                ? FromRefusal(refused.Refusal)
                : Results.Json(await FindAsync(scheduler, tenant, body.Name!, ct), Json, statusCode: StatusCodes.Status201Created);
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateGroupRequest>("application/json").Produces<GroupDto>(StatusCodes.Status201Created);

        v1.MapGet("/groups", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<PlacementReplies.GroupList>(scheduler, new PlacementQueries.ListGroups(Acting(http)), ct);
            return Results.Json(list.Groups.Select(ToDto).ToList(), Json);
        });

        v1.MapGet("/groups/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            await FindAsync(scheduler, Acting(http), name, ct) is { } group
                ? Results.Json(group, Json)
                : Problem(StatusCodes.Status404NotFound, "not found", $"no group '{FieldError.Echo(name)}'"));

        v1.MapDelete("/groups/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            NoContentOrRefusal(await AskAsync<object>(scheduler, new PlacementCommands.DeleteGroup(Acting(http), name), ct))).RequireWrite();

        return v1;
    }

    private static async Task<GroupDto?> FindAsync(IRequiredActor<SchedulerProxy> scheduler, TenantId tenant, string name, CancellationToken ct)
    {
        var list = await AskAsync<PlacementReplies.GroupList>(scheduler, new PlacementQueries.ListGroups(tenant), ct);
        return list.Groups.FirstOrDefault(g => g.Group.Name == name) is { } found ? ToDto(found) : null;
    }

    private static GroupDto ToDto(PlacementReplies.GroupView view) =>
        new(view.Group.Name, view.Group.Policy.ToWire(), view.Members, view.Group.CreatedAt);
}
