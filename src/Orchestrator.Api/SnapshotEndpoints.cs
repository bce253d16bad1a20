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
/// Snapshots of a VM's disk (issue 18): take (a running VM over QMP; answered once its QEMU writes to the new layer, so the
/// snapshot holds nothing written after the answer), list, delete (refused while a layer backs on it), and restore (a
/// stopped VM). A clone is <c>POST /v1/vms</c> with <c>fromSnapshot: "VM/SNAPSHOT"</c>. Another tenant's VM is not found.
/// </summary>
public static class SnapshotEndpoints
{
    /// <summary>How long a snapshot of a running VM is waited for before the answer says it is still being taken (202).</summary>
    private static readonly TimeSpan ReadyWait = TimeSpan.FromSeconds(60);

    public static RouteGroupBuilder MapSnapshots(this RouteGroupBuilder v1)
    {
        v1.MapPost("/vms/{name}/snapshots", async (string name, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (body, error) = await ReadBodyAsync<CreateSnapshotRequest>(request, ct, b => Required(("name", b.Name)));
            if (error is not null)
            {
                return error;
            }

            var snapshot = body!.Name!;
            var tenant = Acting(request.HttpContext);
            // The ids name the layer files: made here, never from what the tenant typed.
            var reply = await AskAsync<object>(scheduler,
                new SnapshotCommands.TakeSnapshot(tenant, name, snapshot, Guid.NewGuid().ToString("N"), Guid.NewGuid().ToString("N")), ct);
            if (reply is not SnapshotReplies.SnapshotAccepted { Snapshot: var view })
            {
                return SnapshotOrRefusal(reply);
            }

            var deadline = DateTime.UtcNow + ReadyWait;
            while (!view.Snapshot.Ready && DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), ct);
                var list = await AskAsync<SnapshotReplies.SnapshotList>(scheduler, new SnapshotQueries.ListSnapshots(tenant), ct);
                view = list.Snapshots.FirstOrDefault(s => s.Snapshot.Id == view.Snapshot.Id) ?? view;
            }

            return Results.Json(ToDto(view), Json, statusCode: view.Snapshot.Ready ? StatusCodes.Status201Created : StatusCodes.Status202Accepted);
        }).RequireWrite().Accepts<CreateSnapshotRequest>("application/json").Produces<SnapshotDto>(StatusCodes.Status201Created);

        v1.MapGet("/snapshots", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SnapshotReplies.SnapshotList>(scheduler, new SnapshotQueries.ListSnapshots(Acting(http)), ct);
            return Results.Json(list.Snapshots.Select(ToDto).ToList(), Json);
        });

        v1.MapGet("/vms/{name}/snapshots", async (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SnapshotReplies.SnapshotList>(scheduler, new SnapshotQueries.ListSnapshots(Acting(http), name), ct);
            return list.VmFound
                ? Results.Json(list.Snapshots.Select(ToDto).ToList(), Json)
                : FromRefusal(Refusal.NotFound($"no VM named '{FieldError.Echo(name)}'"));
        });

        v1.MapDelete("/vms/{name}/snapshots/{snapshot}", async (string name, string snapshot, HttpContext http,
                IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            NoContentOrRefusal(await AskAsync<object>(scheduler, new SnapshotCommands.DeleteSnapshot(Acting(http), name, snapshot), ct)))
            .RequireWrite();

        v1.MapPost("/vms/{name}/snapshots/{snapshot}/restore", async (string name, string snapshot, HttpContext http,
                IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var reply = await AskAsync<object>(scheduler,
                new SnapshotCommands.RestoreSnapshot(Acting(http), name, snapshot, Guid.NewGuid().ToString("N")), ct);
            return reply switch
            {
                SchedulerReplies.VmAccepted { Vm: var vm } => Results.Json(vm.ToDto(), Json),
                _ => SnapshotOrRefusal(reply),
            };
        }).RequireWrite().Produces<VmDto>();

        return v1;
    }

    private static IResult SnapshotOrRefusal(object reply) => reply switch
    {
        SnapshotReplies.SnapshotAccepted accepted => Results.Json(ToDto(accepted.Snapshot), Json, statusCode: StatusCodes.Status201Created),
        SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
        _ => Unexpected(reply),
    };

    private static SnapshotDto ToDto(SnapshotReplies.SnapshotView view) => new(view.Snapshot.Id, view.Snapshot.Name, view.Vm,
        view.Snapshot.Tenant.Value, view.Snapshot.SizeGiB, view.Snapshot.Pool, view.Snapshot.Host?.Value, view.Snapshot.Ready,
        view.Snapshot.CreatedAt);
}
