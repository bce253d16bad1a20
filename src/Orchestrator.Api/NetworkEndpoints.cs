using System.Security.Cryptography;
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
            var (body, error) = await ReadBodyAsync<CreateNetworkRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var missing = new List<FieldError>();
            if (body!.Name is null) missing.Add(new FieldError("name", "is required"));
            if (body.Cidr is null) missing.Add(new FieldError("cidr", "is required"));
            if (missing.Count > 0)
            {
                return Invalid(missing);
            }

            var id = "net" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
            var reply = await AskAsync<object>(scheduler,
                new NetworkCommands.CreateNetwork(id, Acting(request.HttpContext), body.Name!, body.Cidr!, body.Gateway ?? true), ct);
            return reply switch
            {
                NetworkReplies.NetworkCreated created => Results.Json(ToDto(created.Network, 0), Json, statusCode: StatusCodes.Status201Created),
                SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
                _ => Unexpected(reply),
            };
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
