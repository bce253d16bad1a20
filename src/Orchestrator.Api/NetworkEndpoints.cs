using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>A tenant's networks: create (members), list, show, delete (refused while VMs have NICs on it).</summary>
public static class NetworkEndpoints
{
    public static RouteGroupBuilder MapNetworks(this RouteGroupBuilder v1, IdempotencyCache idempotency)
    {
        v1.MapPost("/networks", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateNetworkRequest>(request, ct, b => Required(("name", b.Name), ("cidr", b.Cidr)));
            if (error is not null)
            {
                return error;
            }

            var reply = await AskAsync<object>(scheduler,
                new NetworkCommands.CreateNetwork(NewId("net"), Acting(request.HttpContext), body!.Name!, body.Cidr!, body.Gateway ?? true), ct);
            return JsonOrRefusal<NetworkReplies.NetworkCreated>(reply, created => ToDto(created.Network, 0), StatusCodes.Status201Created);
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateNetworkRequest>("application/json").Produces<NetworkDto>(StatusCodes.Status201Created);

        v1.MapGet("/networks", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<NetworkReplies.NetworkList>(scheduler, new NetworkQueries.ListNetworks(Acting(http)), ct);
            return Results.Json(list.Networks.Select(n => ToDto(n.Network, n.Addresses)).ToList(), Json);
        });

        v1.MapGet("/networks/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            // Another tenant's network of that name is not found, exactly as one that does not exist.
            var list = await AskAsync<NetworkReplies.NetworkList>(scheduler, new NetworkQueries.ListNetworks(Acting(http)), ct);
            return list.Networks.FirstOrDefault(n => n.Network.Name == name) is { } found
                ? Results.Json(ToDto(found.Network, found.Addresses), Json)
                : FromRefusal(Refusal.NotFound($"no network '{FieldError.Echo(name)}'"));
        });

        v1.MapDelete("/networks/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var reply = await AskAsync<object>(scheduler, new NetworkCommands.DeleteNetwork(Acting(http), name), ct);
            return NoContentOrRefusal(reply);
        }).RequireWrite();

        return v1;
    }

    private static NetworkDto ToDto(NetworkRecord n, int addresses) =>
        new(n.Id, n.Name, n.Tenant.Value, n.Cidr, n.Gateway, Ipv4Cidr.Format(n.Range().Router), n.Vni, addresses, n.CreatedAt);
}
