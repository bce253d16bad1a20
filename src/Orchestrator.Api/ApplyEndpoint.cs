// POST /v1/apply: converges the acting tenant's VMs to an apply file, one ordinary scheduler command at a time.
using System.Text;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Apply;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Api;

/// <summary>
/// <c>POST /v1/apply?dryRun=true&amp;prune=true</c>, the body an apply file (<see cref="ApplyFile"/>) as text/plain or
/// application/hocon. Plans with <see cref="ApplyPlanner"/>; unless a dry run, carries out the steps in order, each as
/// the command a person would send (so validation, quotas and admission apply), and stops at the first refusal.
/// Answers <see cref="ApplyResultDto"/>, or problem details saying which step failed and what was done before it.
/// </summary>
public static class ApplyEndpoint
{
    /// <summary>How long a replace waits for the old VM's host to confirm the delete before creating it again.</summary>
    private static readonly TimeSpan DeletionWait = TimeSpan.FromSeconds(120);

    public static RouteGroupBuilder MapApply(this RouteGroupBuilder v1, ImageCatalog images, VmSpecLimits limits)
    {
        v1.MapPost("/apply", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var http = request.HttpContext;
            var flags = new List<FieldError>();
            var dryRun = Flag(request, "dryRun", flags);
            var prune = Flag(request, "prune", flags);
            if (flags.Count > 0)
            {
                return OrchestratorApi.Invalid(flags);
            }

            if (!dryRun && !http.Principal().CanWrite)
            {
                return OrchestratorApi.Problem(StatusCodes.Status403Forbidden, "forbidden",
                    "this key may only read: apply with dryRun=true, or use a key that may change things");
            }

            var media = request.ContentType?.Split(';')[0].Trim();
            if (!string.Equals(media, "text/plain", StringComparison.OrdinalIgnoreCase)
                && !string.Equals(media, "application/hocon", StringComparison.OrdinalIgnoreCase))
            {
                return OrchestratorApi.Problem(StatusCodes.Status415UnsupportedMediaType, "unsupported media type",
                    "send the apply file as text/plain or application/hocon");
            }

            var (text, problem) = await ReadTextAsync(request, ct);
            if (problem is not null)
            {
                return problem;
            }

            var (desired, errors) = ApplyFile.Parse(text!);
            if (errors.Count == 0)
            {
                // The catalog's images and the imported ones the tenant sees.
                var imported = await OrchestratorApi.AskAsync<ImageReplies.ImageList>(scheduler, new ImageQueries.ListImages(OrchestratorApi.Acting(http)), ct);
                errors = ApplyFile.Validate(desired, limits,
                    imported.Images.Count == 0 ? images.Names : images.Names.Union(imported.Images.Select(i => i.Name)).ToHashSet(StringComparer.Ordinal));
            }

            if (errors.Count > 0)
            {
                return OrchestratorApi.Invalid(errors);
            }

            var tenant = OrchestratorApi.Acting(http);
            var current = await OrchestratorApi.AskAsync<SchedulerReplies.VmList>(scheduler, new SchedulerQueries.ListVms(tenant), ct);
            var plan = ApplyPlanner.Plan(desired, current.Vms, prune);
            return dryRun
                ? Results.Json(plan.ToDto(dryRun: true), OrchestratorApi.Json)
                : await ExecuteAsync(new Executor(scheduler, tenant), plan, ct);
        });
        return v1;
    }

    private static async Task<IResult> ExecuteAsync(Executor executor, ApplyPlan plan, CancellationToken ct)
    {
        var changes = plan.Steps.Where(s => s.IsChange).ToList();
        var done = new List<ApplyStep>();
        foreach (var step in changes)
        {
            var failure = await executor.RunAsync(step, ct);
            if (failure is not null)
            {
                var doneText = done.Count == 0
                    ? "nothing was changed before it"
                    : "done before it: " + string.Join(", ", done.Select(d => $"{ApiDtos.ActionName(d.Action)} {d.Vm}"));
                var partly = failure.AlreadyDone is { } already ? $" ({already})" : "";
                return OrchestratorApi.Problem(failure.Status, "apply stopped",
                    $"step {done.Count + 1} of {changes.Count}, {ApiDtos.ActionName(step.Action)} {step.Vm}{partly}, failed: " +
                    $"{failure.Message}; {doneText}",
                    failure.Errors,
                    new Dictionary<string, object?>
                    {
                        ["failedStep"] = step.ToDto(),
                        ["done"] = done.Select(d => d.ToDto()).ToList(),
                        ["changed"] = done.Count,
                    });
            }

            done.Add(step);
        }

        return Results.Json(plan.ToDto(dryRun: false), OrchestratorApi.Json);
    }

    /// <summary>A query flag: absent is false; present as <c>true</c>, <c>false</c>, <c>1</c>, <c>0</c> or bare.</summary>
    private static bool Flag(HttpRequest request, string name, List<FieldError> errors)
    {
        if (!request.Query.TryGetValue(name, out var values))
        {
            return false;
        }

        switch (values.ToString())
        {
            case "" or "1" or "true" or "True":
                return true;
            case "0" or "false" or "False":
                return false;
            default:
                errors.Add(new FieldError(name, "must be true or false"));
                return false;
        }
    }

    /// <summary>The body as UTF-8 text of at most <see cref="ApplyFile.MaxBytes"/>, read no further than that.</summary>
    private static async Task<(string? Text, IResult? Problem)> ReadTextAsync(HttpRequest request, CancellationToken ct)
    {
        var tooLarge = OrchestratorApi.Problem(StatusCodes.Status413PayloadTooLarge, "payload too large",
            $"an apply file is at most {ApplyFile.MaxBytes / 1024} KiB");
        if (request.ContentLength > ApplyFile.MaxBytes)
        {
            return (null, tooLarge);
        }

        var buffer = new byte[ApplyFile.MaxBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await request.Body.ReadAsync(buffer.AsMemory(length), ct)) > 0)
        {
            length += read;
        }

        if (length > ApplyFile.MaxBytes)
        {
            return (null, tooLarge);
        }

        try
        {
            return (new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(buffer, 0, length), null);
        }
        catch (DecoderFallbackException)
        {
            return (null, OrchestratorApi.Problem(StatusCodes.Status400BadRequest, "invalid body", "the apply file is not UTF-8 text"));
        }
    }

    /// <summary>Why a step stopped: the status to answer, the message, field errors by path, and what of it was done.</summary>
    private sealed record StepFailure(int Status, string Message, IReadOnlyList<FieldError> Errors, string? AlreadyDone = null);

    /// <summary>Carries out steps for one tenant, each through the ordinary scheduler commands.</summary>
    private sealed class Executor(IRequiredActor<SchedulerProxy> scheduler, TenantId tenant)
    {
        public async Task<StepFailure?> RunAsync(ApplyStep step, CancellationToken ct)
        {
            try
            {
                return step switch
                {
                    ApplyStep.Create create => await CreateAsync(create.Desired, ct),
                    ApplyStep.Update update => await UpdateAsync(update, ct),
                    ApplyStep.Replace replace => await SendAsync(new LedgerCommands.DeleteVm(tenant, replace.Vm), replace.Vm, ct) is { } refused
                        ? refused
                        : await CreateAsync(replace.Desired, ct) is { } failed
                            ? failed with { AlreadyDone = "the old VM is deleted" }
                            : null,
                    ApplyStep.Delete delete => await SendAsync(new LedgerCommands.DeleteVm(tenant, delete.Vm), delete.Vm, ct),
                    _ => null,
                };
            }
            catch (AskTimeoutException)
            {
                return new StepFailure(StatusCodes.Status503ServiceUnavailable,
                    "the scheduler did not answer in time (the step may have happened; apply again to see)", []);
            }
        }

        private async Task<StepFailure?> UpdateAsync(ApplyStep.Update update, CancellationToken ct)
        {
            var done = new List<string>();
            StepFailure? Partly(StepFailure failure) => done.Count == 0 ? failure : failure with { AlreadyDone = string.Join(" and ", done) + " changed" };

            if (update.Resources is { } resources)
            {
                if (await SendAsync(new LedgerCommands.SetVmResources(tenant, update.Vm, resources), update.Vm, ct) is { } failure)
                {
                    return failure;
                }

                done.Add("resources");
            }

            if (update.Labels is { } labels)
            {
                if (await SendAsync(new LedgerCommands.SetVmLabels(tenant, update.Vm, labels), update.Vm, ct) is { } failure)
                {
                    return Partly(failure);
                }

                done.Add("labels");
            }

            if (update.State is { } state)
            {
                ILedgerCommand command = state == DesiredState.Stopped
                    ? new LedgerCommands.StopVm(tenant, update.Vm)
                    : new LedgerCommands.StartVm(tenant, update.Vm);
                if (await SendAsync(command, update.Vm, ct) is { } failure)
                {
                    return Partly(failure);
                }
            }

            return null;
        }

        /// <summary>Creates the VM once no VM of its name is being deleted (a replace, or a delete still under way).</summary>
        private async Task<StepFailure?> CreateAsync(DesiredVm desired, CancellationToken ct)
        {
            if (!await DeletionSettledAsync(desired.Name, ct))
            {
                return new StepFailure(StatusCodes.Status503ServiceUnavailable,
                    $"the VM's host has not confirmed deleting the old one after {DeletionWait.TotalSeconds:0} s; apply again once it is gone", []);
            }

            if (await SendAsync(new LedgerCommands.CreateVm(tenant, desired.Spec, VmId.New()), desired.Name, ct) is { } failure)
            {
                return failure;
            }

            return desired.State == DesiredState.Stopped
                ? await SendAsync(new LedgerCommands.StopVm(tenant, desired.Name), desired.Name, ct) is { } notStopped
                    ? notStopped with { AlreadyDone = "created" }
                    : null
                : null;
        }

        /// <summary>
        /// Waits (up to <see cref="DeletionWait"/>) for the scheduler to say that no VM of the name is being deleted: it
        /// answers when the ledger releases the VM. An unanswered ask is asked again, as a scheduler that failed over
        /// meanwhile has forgotten it. False: still being deleted.
        /// </summary>
        private async Task<bool> DeletionSettledAsync(string name, CancellationToken ct)
        {
            var deadline = DateTime.UtcNow + DeletionWait;
            while (DateTime.UtcNow < deadline)
            {
                try
                {
                    await OrchestratorApi.AskAsync<SchedulerReplies.DeletionSettled>(scheduler, new SchedulerQueries.AwaitDeletion(tenant, name), ct);
                    return true;
                }
                catch (AskTimeoutException)
                {
                    // Not deleted yet, or the scheduler moved and forgot the ask: ask again until the deadline.
                }
            }

            return false;
        }

        private async Task<StepFailure?> SendAsync(ILedgerCommand command, string vm, CancellationToken ct)
        {
            var reply = await OrchestratorApi.AskAsync<object>(scheduler, command, ct);
            if (reply is SchedulerReplies.VmAccepted)
            {
                return null;
            }

            if (reply is not SchedulerReplies.Refused { Refusal: var refusal })
            {
                return new StepFailure(StatusCodes.Status500InternalServerError, $"unexpected reply {reply.GetType().Name}", []);
            }

            var errors = refusal.Errors.Select(e => new FieldError(ApplyFile.FieldPath(vm, e.Field), e.Message)).ToList();
            var message = refusal.Kind is RefusalKind.NotFound or RefusalKind.Conflict || errors.Count == 0
                ? refusal.Message
                : string.Join("; ", errors.Select(e => $"{e.Field} {e.Message}"));
            return new StepFailure(OrchestratorApi.StatusOf(refusal.Kind), message, errors);
        }
    }
}
