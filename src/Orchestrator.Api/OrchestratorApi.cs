using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Telemetry;
using Orchestrator.Actors.Tenants;
using Orchestrator.Contracts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Api;

/// <summary>
/// The HTTP API under /v1. It talks to the scheduler through messages only. Every request needs a key: the
/// bootstrap admin key, or a key issued to a tenant (admin, member or read-only). Tenants see only their own things:
/// another tenant's VM is indistinguishable from a missing one. Errors are RFC 7807 problem details naming the field.
/// </summary>
public static class OrchestratorApi
{
    /// <summary>The wire format, shared with the CLI.</summary>
    public static readonly JsonSerializerOptions Json = WireJson.Options;

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    public static IEndpointRouteBuilder MapOrchestratorApi(this IEndpointRouteBuilder app, string adminKey, ImageCatalog images,
        Domain.Placement.PlacementPolicy policy, ApiLimits limits, VmSpecLimits? specLimits = null, ImageImportSettings? imageImport = null)
    {
        app.MapGet("/healthz", () => Results.Text("ok")).ExcludeFromDescription();
        // The OpenAPI document of everything under /v1, generated from the endpoints themselves; public, like a schema.
        app.MapOpenApi("/v1/openapi.json");

        var scheduler = app.ServiceProvider.GetRequiredService<IRequiredActor<SchedulerProxy>>();
        var auth = new ApiAuthenticator(adminKey, (keyId, ct) => AskAsync<SchedulerReplies.KeyFound>(scheduler, new SchedulerQueries.FindKey(keyId), ct));
        app.MapMetrics(auth);
        var idempotency = new IdempotencyCache();
        // Per tenant: a token bucket each, so one tenant's burst never slows another's requests; the rule engine takes
        // from the same buckets. Requests without a valid key: a small bucket per client address, apart, so that a flood
        // of bad keys is refused early and never spends a valid key's budget (nor is it spent by one).
        var strangers = new TokenBuckets(limits.UnauthenticatedPerSecond, limits.UnauthenticatedBurst);

        var v1 = app.MapGroup("/v1").AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var header = http.Request.Headers.Authorization.ToString();
            var key = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : null;
            var (principal, failure) = await auth.AuthenticateAsync(key, http.RequestAborted);
            if (principal is null)
            {
                var address = ClientAddress(http);
                return strangers.TryTake(address, out var wait)
                    ? Problem(failure!.Status, failure.Status == 401 ? "unauthorized" : "forbidden", failure.Detail)
                    : TooManyRequests(http, wait, $"too many requests without a valid key from {address} " +
                                                  $"(at most {limits.UnauthenticatedPerSecond}/s, burst {limits.UnauthenticatedBurst})");
            }

            if (!TenantBudget.Get(http.RequestServices.GetRequiredService<ActorSystem>()).TryTake(principal.Tenant, out var retry))
            {
                return TooManyRequests(http, retry,
                    $"tenant '{principal.Tenant}' is over its rate limit of {limits.RequestsPerSecond} requests/s (burst {limits.Burst})");
            }

            http.SetPrincipal(principal);
            return await next(context);
        });

        v1.MapTenants(auth, idempotency);
        v1.MapWebhooks(idempotency);
        v1.MapRules(idempotency);
        v1.MapPlacement(idempotency);
        v1.MapNetworks(idempotency);
        v1.MapVolumes(idempotency);
        v1.MapSnapshots();
        v1.MapSecurityGroups(idempotency);
        v1.MapForwards();

        v1.MapGet("/vms", async (HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            // An admin sees every tenant's VMs unless it names one; everyone else sees their own.
            var principal = http.Principal();
            var tenant = principal.IsAdmin && string.IsNullOrEmpty(http.Request.Query["tenant"]) ? (TenantId?)null : Acting(http);
            var list = await AskAsync<SchedulerReplies.VmList>(scheduler, new SchedulerQueries.ListVms(tenant), ct);
            return Results.Json(list.Vms.Select(v => v.ToDto()).ToList(), Json);
        });

        v1.MapGet("/vms/{name}", (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            ShowVmAsync(scheduler, Acting(http), name, ct));

        v1.MapPost("/vms", async (HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var tenant = Acting(request.HttpContext);
            var (body, error) = await ReadBodyAsync<CreateVmRequest>(request, ct);
            if (error is not null)
            {
                return error;
            }

            var missing = new List<FieldError>();
            if (body!.Name is null) missing.Add(new FieldError("name", "is required"));
            if (body.Vcpus is null) missing.Add(new FieldError("vcpus", "is required"));
            if (body.MemoryMiB is null) missing.Add(new FieldError("memoryMiB", "is required"));
            if (body.Image is null) missing.Add(new FieldError("image", "is required"));
            var restart = RestartPolicy.OnFailure;
            if (body.RestartPolicy is not null && !RestartPolicies.TryParse(body.RestartPolicy, out restart))
            {
                missing.Add(new FieldError("restartPolicy", "must be one of always, on-failure, never"));
            }

            if (missing.Count > 0)
            {
                return Invalid(missing);
            }

            var spec = new VmSpec(body.Name!, body.Vcpus!.Value, body.MemoryMiB!.Value, body.Image!, restart, body.ToResources(), body.Labels, body.Driver,
                body.Accelerator, VmBootstrap.Of(body.Hostname, body.SshKeys, body.UserData), body.DiskGiB, body.HostSelector, body.Group,
                body.Nics?.Select(n => new Domain.Networks.VmNic(n.Network ?? "", n.Ip, SecurityGroups: n.SecurityGroups)).ToList(), body.Volumes, body.FromSnapshot);
            // The ledger checks it again; checked here first, a spec full of bad labels never travels to the scheduler. The image
            // only the ledger checks: it knows the tenant's imported ones.
            if (VmSpecValidator.Validate(spec, specLimits ?? VmSpecLimits.Default, knownImages: null) is { Count: > 0 } invalid)
            {
                return Invalid(invalid);
            }

            var newId = VmId.New();
            var span = OrchestratorTracing.StartRoot("POST /v1/vms", request.Headers["traceparent"]);
            span?.SetTag(OrchestratorTracing.TenantIdTag, tenant.ToString());
            span?.SetTag(OrchestratorTracing.VmIdTag, newId.ToString());
            try
            {
                var reply = await AskAsync<object>(scheduler, new LedgerCommands.CreateVm(tenant, spec, newId, Idempotency.TokenOf(request.HttpContext),
                    OrchestratorTracing.TraceParentOf(span)), ct);
                span.End(reply is SchedulerReplies.VmAccepted ? ActivityStatusCode.Ok : ActivityStatusCode.Error);
                return reply switch
                {
                    SchedulerReplies.VmAccepted { Vm: var vm } => Results.Json(vm.ToDto(), Json, statusCode: StatusCodes.Status201Created),
                    SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
                    _ => Unexpected(reply),
                };
            }
            catch (Exception ex)
            {
                span.End(ActivityStatusCode.Error, ex.GetType().Name);
                throw;
            }
        }).RequireWrite().Idempotent(idempotency).Accepts<CreateVmRequest>("application/json").Produces<VmDto>(StatusCodes.Status201Created);

        v1.MapPost("/vms/{name}/stop", (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            ChangeAsync(scheduler, new LedgerCommands.StopVm(Acting(http), name), name, ct)).RequireWrite();
        v1.MapPost("/vms/{name}/start", (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            ChangeAsync(scheduler, new LedgerCommands.StartVm(Acting(http), name), name, ct)).RequireWrite();
        v1.MapPost("/vms/{name}/pause", (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            SetPausedAsync(scheduler, Acting(http), name, paused: true, ct)).RequireWrite();
        v1.MapPost("/vms/{name}/resume", (string name, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            SetPausedAsync(scheduler, Acting(http), name, paused: false, ct)).RequireWrite();
        // ?withVolumes=true deletes the volumes attached to it with it (else they outlive it, detached).
        v1.MapDelete("/vms/{name}", (string name, bool? withVolumes, HttpContext http, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
            ChangeAsync(scheduler, new LedgerCommands.DeleteVm(Acting(http), name, withVolumes ?? false), name, ct)).RequireWrite();

        // The VM's labels, replaced whole by a JSON object of strings.
        v1.MapPut("/vms/{name}/labels", async (string name, HttpRequest request, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (labels, error) = await ReadBodyAsync<Dictionary<string, string>>(request, ct);
            return error ?? await ChangeAsync(scheduler, new LedgerCommands.SetVmLabels(Acting(request.HttpContext), name, labels!), name, ct);
        }).RequireWrite();

        // JSON merge patch (RFC 7396) of the VM's resources: a field left out keeps its value, null restores the default.
        v1.MapMethods("/vms/{name}/resources", ["PATCH"], async (string name, HttpRequest request,
            IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var (patch, error) = await ReadBodyAsync<System.Text.Json.Nodes.JsonObject>(request, ct);
            if (error is not null)
            {
                return error;
            }

            // The ledger merges the patch into the resources it has when it decides: a read here and a write of the whole
            // would lose a concurrent patch of another field.
            var (changes, errors) = ResourcesPatch.Parse(JsonSerializer.SerializeToElement(patch, Json));
            if (errors.Count > 0)
            {
                return Invalid(errors);
            }

            return await ChangeAsync(scheduler, new LedgerCommands.PatchVmResources(Acting(request.HttpContext), name, changes!), name, ct);
        }).RequireWrite();

        v1.MapGet("/hosts", async (IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.HostList>(scheduler, SchedulerQueries.ListHosts.Instance, ct);
            return Results.Json(list.Hosts.Select(h => h.ToDto()).ToList(), Json);
        }).RequireAdmin();

        v1.MapGet("/hosts/{id}", async (string id, IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.HostList>(scheduler, SchedulerQueries.ListHosts.Instance, ct);
            return list.Hosts.FirstOrDefault(h => h.Id.Value == id) is { } host
                ? Results.Json(host.ToDto(), Json)
                : Problem(StatusCodes.Status404NotFound, "not found", $"no host '{(id.Length > 64 ? id[..64] + "…" : id)}'");
        }).RequireAdmin();

        v1.MapGet("/capacity", async (IRequiredActor<SchedulerProxy> scheduler, CancellationToken ct) =>
        {
            var list = await AskAsync<SchedulerReplies.HostList>(scheduler, SchedulerQueries.ListHosts.Instance, ct);
            return Results.Json(ApiDtos.CapacityOf(list.Hosts, policy), Json);
        }).RequireAdmin();

        v1.MapImages(images, imageImport);
        v1.MapApply(images, specLimits ?? VmSpecLimits.Default);
        v1.MapEventStream();
        v1.MapConsole(app, auth);

        return app;
    }

    private static IResult TooManyRequests(HttpContext http, TimeSpan wait, string detail)
    {
        http.Response.Headers.RetryAfter = TokenBuckets.RetryAfterSeconds(wait).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Problem(StatusCodes.Status429TooManyRequests, "too many requests", detail);
    }

    /// <summary>
    /// Whose budget a request without a valid key spends: its peer's address, an IPv6 one by its /64 (one host's
    /// worth: a client picks its address within it at will). Forwarded headers are not trusted.
    /// </summary>
    internal static string ClientAddress(HttpContext http)
    {
        if (http.Connection.RemoteIpAddress is not { } address)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new System.Net.IPAddress(bytes) + "/64";
    }

    /// <summary>Services the API needs: the OpenAPI document (title, version, the bearer key scheme).</summary>
    public static IServiceCollection AddOrchestratorApi(this IServiceCollection services) =>
        services.AddOpenApi("v1", options => options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Orchestrator API";
            document.Info.Version = "v1";
            document.Info.Description =
                "Multi-tenant VM orchestrator. Every /v1 request needs 'Authorization: Bearer <key>'. Errors are RFC 7807 problem details.";
            return Task.CompletedTask;
        }));

    /// <summary>Only keys that may change things (members and admins); read-only keys get 403.</summary>
    public static RouteHandlerBuilder RequireWrite(this RouteHandlerBuilder endpoint) =>
        endpoint.AddEndpointFilter(async (context, next) => context.HttpContext.Principal().CanWrite
            ? await next(context)
            : Problem(StatusCodes.Status403Forbidden, "forbidden", "this key is read-only"));

    /// <summary>Operator endpoints (tenants, hosts, capacity): admin keys only; others get 403 whatever they ask for.</summary>
    public static RouteHandlerBuilder RequireAdmin(this RouteHandlerBuilder endpoint) =>
        endpoint.AddEndpointFilter(async (context, next) => context.HttpContext.Principal().IsAdmin
            ? await next(context)
            : Problem(StatusCodes.Status403Forbidden, "forbidden", "this needs an admin key"));

    /// <summary>Unknown routes and methods under /v1 answer with problem details too.</summary>
    public static IApplicationBuilder UseOrchestratorProblemDetails(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (BadHttpRequestException ex) when (!context.Response.HasStarted)
            {
                await Problem(ex.StatusCode, ex.StatusCode == StatusCodes.Status413PayloadTooLarge ? "body too large" : "bad request",
                    ex.Message).ExecuteAsync(context);
                return;
            }
            catch (AskTimeoutException)
            {
                await Problem(StatusCodes.Status503ServiceUnavailable, "scheduler unavailable",
                    "the scheduler did not answer in time; the cluster may still be forming").ExecuteAsync(context);
                return;
            }
            catch (Exception ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                // A bug, but the client still gets problem details rather than an empty 500. The log names the route
                // pattern, never the request's own path or body: those are tenant strings.
                context.RequestServices.GetService<ILoggerFactory>()?.CreateLogger(typeof(OrchestratorApi))
                    .LogError(ex, "unhandled error answering {Method} {Endpoint}", context.Request.Method,
                        context.GetEndpoint()?.DisplayName ?? "(no endpoint)");
                await Problem(StatusCodes.Status500InternalServerError, "internal error",
                    $"the request failed unexpectedly; the node's log has the details ({context.TraceIdentifier})").ExecuteAsync(context);
                return;
            }

            if (context.Response is { HasStarted: false, StatusCode: 404 or 405 or 415 } && context.Response.ContentLength is null)
            {
                var status = context.Response.StatusCode;
                await (status == 415
                    ? Problem(status, "unsupported media type", "send the body as application/json")
                    : Problem(status, status == 404 ? "not found" : "method not allowed",
                        $"{context.Request.Method} {context.Request.Path} is not part of the API")).ExecuteAsync(context);
            }
        });

    /// <summary>
    /// The tenant a request acts on (<see cref="ApiPrincipal.ActingTenant"/>). An admin naming a malformed tenant acts
    /// on a tenant that cannot exist, so the request finds nothing rather than something else.
    /// </summary>
    public static TenantId Acting(HttpContext http) =>
        http.Principal().ActingTenant(http.Request) ?? new TenantId("-invalid-");

    private static async Task<IResult> ChangeAsync(IRequiredActor<SchedulerProxy> scheduler, ILedgerCommand command, string name,
        CancellationToken ct)
    {
        var reply = await AskAsync<object>(scheduler, command, ct);
        return reply switch
        {
            SchedulerReplies.VmAccepted { Vm: var vm } => Results.Json(vm.ToDto(), Json, statusCode: StatusCodes.Status202Accepted),
            SchedulerReplies.Done => VmNotFound(name),
            SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
            _ => Unexpected(reply),
        };
    }

    /// <summary>The ledger's record of the VM with its host's live details (vCPU threads, console, paused) when the host answers.</summary>
    private static async Task<IResult> ShowVmAsync(IRequiredActor<SchedulerProxy> scheduler, TenantId tenant, string name, CancellationToken ct)
    {
        var shown = await AskAsync<SchedulerReplies.VmShown>(scheduler, new SchedulerQueries.ShowVm(tenant, name), ct);
        return shown.Vm is null ? VmNotFound(name) : Results.Json(shown.Vm.ToDto(shown.Runtime), Json);
    }

    /// <summary>Pause or resume where the VM runs: 200 with the VM once every vCPU acknowledged, 409 when it cannot be done.</summary>
    private static async Task<IResult> SetPausedAsync(IRequiredActor<SchedulerProxy> scheduler, TenantId tenant, string name, bool paused,
        CancellationToken ct)
    {
        object reply;
        try
        {
            // AskTimeout is well over a host's wait for its vCPUs' acknowledgements, so the host's own answer comes first.
            reply = await AskAsync<object>(scheduler, new SetVmPaused(tenant, name, paused), ct);
        }
        catch (AskTimeoutException)
        {
            return Problem(StatusCodes.Status504GatewayTimeout, "host did not answer",
                $"the VM's host did not confirm the {(paused ? "pause" : "resume")} within {AskTimeout.TotalSeconds:0} s");
        }

        switch (reply)
        {
            case SchedulerReplies.VmFound { Vm: null }:
                return VmNotFound(name);
            case VmPauseResult { Error: { } error }:
                return Problem(StatusCodes.Status409Conflict, "conflict", $"cannot {(paused ? "pause" : "resume")} '{Shorten(name)}': {error}");
            case VmPauseResult:
                return await ShowVmAsync(scheduler, tenant, name, ct);
            default:
                return Unexpected(reply);
        }
    }

    internal static async Task<T> AskAsync<T>(IRequiredActor<SchedulerProxy> scheduler, object message, CancellationToken ct)
    {
        var proxy = await scheduler.GetAsync(ct);
        return await proxy.Ask<T>(message, AskTimeout, ct);
    }

    internal static async Task<(T? Body, IResult? Error)> ReadBodyAsync<T>(HttpRequest request, CancellationToken ct)
        where T : class
    {
        if (request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Problem(StatusCodes.Status415UnsupportedMediaType, "unsupported media type",
                "send the body as application/json"));
        }

        try
        {
            // Bodies are small (Kestrel's MaxRequestBodySize bounds them): read whole, checked, then bound.
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, ct);
            if (StrictJson.FindRepeatedName(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)) is { } repeated)
            {
                return (null, Invalid([new FieldError(Shorten(repeated), "is given twice")]));
            }

            var body = JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), Json);
            return body is null
                ? (null, Problem(StatusCodes.Status400BadRequest, "invalid body", "the body must be a JSON object"))
                : (body, null);
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : null;
            return (null, field is null
                ? Problem(StatusCodes.Status400BadRequest, "invalid body", "the body is not valid JSON")
                : Invalid([new FieldError(Shorten(field), "has the wrong type or is malformed")]));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, Problem(StatusCodes.Status413PayloadTooLarge, "body too large", ex.Message));
        }
    }

    /// <summary>
    /// Reads a body as <see cref="ReadBodyAsync{T}(HttpRequest, CancellationToken)"/> does, then answers 400 naming every
    /// field <paramref name="validate"/> finds wrong (all of them at once, so a client fixes its request in one go).
    /// </summary>
    internal static async Task<(T? Body, IResult? Error)> ReadBodyAsync<T>(HttpRequest request, CancellationToken ct,
        Func<T, IEnumerable<FieldError>> validate)
        where T : class
    {
        var (body, error) = await ReadBodyAsync<T>(request, ct);
        if (error is not null)
        {
            return (null, error);
        }

        var errors = validate(body!).ToList();
        return errors.Count > 0 ? (null, Invalid(errors)) : (body, null);
    }

    /// <summary>"is required" for each of the named fields whose value is missing, in the order given.</summary>
    internal static IEnumerable<FieldError> Required(params (string Field, object? Value)[] fields) =>
        fields.Where(f => f.Value is null).Select(f => new FieldError(f.Field, "is required"));

    /// <summary>A new object's id: a fixed prefix and random hex, never anything a tenant typed (ids name files, devices and namespaces).</summary>
    internal static string NewId(string prefix, int bytes = 6) => prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(bytes));

    /// <summary>A scheduler's answer to a command that yields one object: that object as JSON with <paramref name="status"/>, or the refusal.</summary>
    internal static IResult JsonOrRefusal<TReply>(object reply, Func<TReply, object> toDto, int status = StatusCodes.Status200OK) => reply switch
    {
        TReply accepted => Results.Json(toDto(accepted), Json, statusCode: status),
        SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
        _ => Unexpected(reply),
    };

    /// <summary>A scheduler's answer to a delete/revoke: 204, or the refusal as problem details.</summary>
    public static IResult NoContentOrRefusal(object reply) => reply switch
    {
        SchedulerReplies.Done => Results.NoContent(),
        SchedulerReplies.Refused refused => FromRefusal(refused.Refusal),
        _ => Unexpected(reply),
    };

    public static IResult FromRefusal(Refusal refusal) => refusal.Kind switch
    {
        RefusalKind.NotFound => Problem(StatusOf(refusal.Kind), "not found", refusal.Message),
        RefusalKind.Forbidden => Problem(StatusOf(refusal.Kind), "forbidden", refusal.Message, refusal.Errors),
        RefusalKind.Conflict => Problem(StatusOf(refusal.Kind), "conflict", refusal.Message, refusal.Errors),
        RefusalKind.KeyReused => Problem(StatusOf(refusal.Kind), "idempotency key reused", refusal.Message),
        _ => Invalid(refusal.Errors),
    };

    /// <summary>
    /// The one HTTP status of each kind of ledger refusal, whichever endpoint met it: a quota refusal is 403 from
    /// <c>POST /v1/vms</c> and from an apply step alike.
    /// </summary>
    public static int StatusOf(RefusalKind kind) => kind switch
    {
        RefusalKind.NotFound => StatusCodes.Status404NotFound,
        RefusalKind.Forbidden => StatusCodes.Status403Forbidden,
        RefusalKind.Conflict => StatusCodes.Status409Conflict,
        RefusalKind.KeyReused => StatusCodes.Status422UnprocessableEntity,
        _ => StatusCodes.Status400BadRequest,
    };

    private static IResult VmNotFound(string name) =>
        Problem(StatusCodes.Status404NotFound, "not found", $"no VM named '{Shorten(name)}'");

    internal static IResult Invalid(IReadOnlyList<FieldError> errors)
    {
        var listed = FieldError.Bounded(errors);
        return Problem(StatusCodes.Status400BadRequest, "invalid request", string.Join("; ", listed.Select(e => $"{e.Field} {e.Message}")), listed);
    }

    internal static IResult Unexpected(object reply) =>
        Problem(StatusCodes.Status500InternalServerError, "internal error", $"unexpected reply {reply.GetType().Name}");

    public static IResult Problem(int status, string title, string detail, IReadOnlyList<FieldError>? errors = null,
        IReadOnlyDictionary<string, object?>? more = null)
    {
        // Every problem answer goes through here, so this is where an answer's size stops depending on the request's:
        // at most FieldError.MaxListed errors and MaxDetail characters of detail, whatever the endpoint.
        var extensions = more?.ToDictionary() ?? new Dictionary<string, object?>();
        if (errors is { Count: > 0 })
        {
            extensions["errors"] = FieldError.Bounded(errors).GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray());
        }

        return Results.Problem(detail: detail.Length > MaxDetail ? detail[..MaxDetail] + "…" : detail, statusCode: status, title: title,
            extensions: extensions);
    }

    /// <summary>The longest detail a problem answer carries.</summary>
    private const int MaxDetail = 4096;

    internal static string Shorten(string text) => FieldError.Echo(text);
}
