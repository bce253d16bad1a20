using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using static Orchestrator.Api.OrchestratorApi;

namespace Orchestrator.Api;

/// <summary>
/// A tenant's volumes (issue 18): create, list, show, resize (grow only), delete (refused while attached), and attach
/// to / detach from a VM, running or not. Another tenant's volume is not found, exactly as one that does not exist.
/// </summary>
public static class VolumeEndpoints
{
    public static RouteGroupBuilder MapVolumes(this RouteGroupBuilder v1, IdempotencyCache idempotency)
    {
        v1.MapPost("/volumes", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateVolumeRequest>(request, ct, b => Required(("name", b.Name), ("sizeGiB", b.SizeGiB)));
            if (error is not null)
            {
                return error;
            }

            // The id names the volume's file and QEMU devices: made here, never from what the tenant typed.
            var command = new VolumeCommands.CreateVolume(Guid.NewGuid().ToString("N"), Acting(request.HttpContext), body!.Name!, body.SizeGiB!.Value,
                body.Pool);
            return VolumeOrRefusal(await AskAsync<object>(scheduler, command, ct), StatusCodes.Status201Created);
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateVolumeRequest>("application/json").Produces<VolumeDto>(StatusCodes.Status201Created);

        v1.MapGet("/volumes", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<VolumeReplies.VolumeList>(scheduler, new VolumeQueries.ListVolumes(Acting(http)), ct);
            return Results.Json(list.Volumes.Select(ToDto).ToList(), Json);
        });

        v1.MapGet("/volumes/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<VolumeReplies.VolumeList>(scheduler, new VolumeQueries.ListVolumes(Acting(http)), ct);
            return list.Volumes.FirstOrDefault(v => v.Volume.Name == name) is { } found
                ? Results.Json(ToDto(found), Json)
                : FromRefusal(Refusal.NotFound($"no volume '{FieldError.Echo(name)}'"));
        });

        v1.MapPost("/volumes/{name}/resize", async (string name, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<ResizeVolumeRequest>(request, ct, b => Required(("sizeGiB", b.SizeGiB)));
            return error ?? VolumeOrRefusal(
                await AskAsync<object>(scheduler, new VolumeCommands.ResizeVolume(Acting(request.HttpContext), name, body!.SizeGiB!.Value), ct),
                StatusCodes.Status200OK, name);
        }).RequireWrite().Accepts<ResizeVolumeRequest>("application/json").Produces<VolumeDto>();

        v1.MapDelete("/volumes/{name}", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            NoContentOrRefusal(await AskAsync<object>(scheduler, new VolumeCommands.DeleteVolume(Acting(http), name), ct))).RequireWrite();

        v1.MapPost("/vms/{name}/volumes/{volume}", async (string name, string volume, HttpContext http, IRequiredActor<SchedulerProxy> scheduler,
                CancellationToken ct) =>
            VolumeOrRefusal(await AskAsync<object>(scheduler, new VolumeCommands.AttachVolume(Acting(http), name, volume), ct),
                StatusCodes.Status200OK, volume)).RequireWrite().Produces<VolumeDto>();

        v1.MapDelete("/vms/{name}/volumes/{volume}", async (string name, string volume, HttpContext http, IRequiredActor<SchedulerProxy> scheduler,
                CancellationToken ct) =>
            VolumeOrRefusal(await AskAsync<object>(scheduler, new VolumeCommands.DetachVolume(Acting(http), name, volume), ct),
                StatusCodes.Status200OK, volume)).RequireWrite().Produces<VolumeDto>();

        return v1;
    }

    /// <param name="name">the volume a command named: Done with nothing to show means it is not the tenant's.</param>
    private static IResult VolumeOrRefusal(object reply, int status, string? name = null) => reply switch
    {
        VolumeReplies.VolumeAccepted accepted => Results.Json(ToDto(accepted.Volume), Json, statusCode: status),
        SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
        SchedulerReplies.Done => FromRefusal(Refusal.NotFound($"no volume '{FieldError.Echo(name ?? "")}'")),
        _ => Unexpected(reply),
    };

    private static VolumeDto ToDto(VolumeReplies.VolumeView view) => new(view.Volume.Id, view.Volume.Name, view.Volume.Tenant.Value,
        view.Volume.SizeGiB, view.Volume.Pool, view.Volume.Host?.Value, view.AttachedTo, view.Volume.CreatedAt);
}
