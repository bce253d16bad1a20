using System.Security.Cryptography;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>A tenant network's port forwards: add (a host port of the tenant's range to a VM's port), list, remove.</summary>
public static class ForwardEndpoints
{
    public static RouteGroupBuilder MapForwards(this RouteGroupBuilder v1)
    {
        v1.MapPost("/networks/{name}/forwards", async (string name, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateForwardRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var missing = new List<FieldError>();
            if (body!.HostPort is null) missing.Add(new FieldError("hostPort", "is required"));
            if (body.Vm is null) missing.Add(new FieldError("vm", "is required"));
            if (body.Port is null) missing.Add(new FieldError("port", "is required"));
            if (missing.Count > 0)
            {
                return Invalid(missing);
            }

            var id = "f" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
            var tenant = Acting(request.HttpContext);
            var reply = await AskAsync<object>(scheduler, new ForwardCommands.AddForward(id, tenant, name, body.HostPort!.Value, body.Vm!,
                body.Port!.Value, body.Protocol?.ToLowerInvariant() ?? PortForwardRecord.Tcp), ct);
            if (reply is SchedulerReplies.Refused refused)
            {
                return FromRefusal(refused.Refusal);
            }

            var list = await AskAsync<ForwardReplies.ForwardList>(scheduler, new ForwardQueries.ListForwards(tenant, name), ct);
            return list.Forwards.FirstOrDefault(f => f.Forward.Id == id) is { } created
                ? Results.Json(ToDto(name, created), Json, statusCode: StatusCodes.Status201Created)
                : Unexpected(reply);
        }).RequireWrite().Accepts<CreateForwardRequest>("application/json").Produces<ForwardDto>(StatusCodes.Status201Created);

        v1.MapGet("/networks/{name}/forwards", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<ForwardReplies.ForwardList>(scheduler, new ForwardQueries.ListForwards(Acting(http), name), ct);
            return list.Found
                ? Results.Json(list.Forwards.Select(f => ToDto(name, f)).ToList(), Json)
                : FromRefusal(Refusal.NotFound($"no network '{FieldError.Echo(name)}'"));
        });

        v1.MapDelete("/networks/{name}/forwards/{id}", async (string name, string id, HttpContext http, IRequiredActor<SchedulerProxy> scheduler,
            CancellationToken ct) =>
            NoContentOrRefusal(await AskAsync<object>(scheduler, new ForwardCommands.RemoveForward(Acting(http), name, id), ct)))
            .RequireWrite();

        return v1;
    }

    private static ForwardDto ToDto(string network, ForwardReplies.ForwardView f) =>
        new(f.Forward.Id, network, f.Forward.Protocol, f.Forward.HostPort, f.Vm, f.Forward.GuestPort, f.Ip, f.Forward.CreatedAt);
}
