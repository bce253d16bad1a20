using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Hosting;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Api;

/// <summary>
/// <c>GET /v1/events</c>: the domain events the caller may see, as Server-Sent Events in journal order. Each event's
/// <c>id</c> is its journal offset, so a client resumes with <c>Last-Event-ID</c> (or <c>?after=</c>) and gets every
/// later event once. A tenant's key sees the events tagged with its tenant; an admin's sees all, or one tenant's with
/// <c>?tenant=</c>.
/// </summary>
public static class EventStream
{
    /// <summary>A comment line this often keeps proxies and clients from taking a quiet stream for a dead one.</summary>
    public static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);

    /// <summary>The most a <c>?last=</c> may ask for.</summary>
    public const int MaxLast = 10_000;

    /// <summary>The names <c>?type=</c> accepts: every domain (ledger) event type.</summary>
    public static readonly FrozenSet<string> KnownTypes = OrchestratorSerializer.TypesByManifest.Values
        .Where(t => typeof(ILedgerEvent).IsAssignableFrom(t))
        .Select(t => t.Name)
        .ToFrozenSet(StringComparer.Ordinal);

    public static RouteGroupBuilder MapEventStream(this RouteGroupBuilder v1)
    {
        v1.MapGet("/events", StreamAsync);
        return v1;
    }

    private static async Task<IResult> StreamAsync(HttpContext http, ActorSystem system, IRequiredActor<SchedulerProxy> scheduler,
        IHostApplicationLifetime lifetime, ILoggerFactory logs, CancellationToken ct)
    {
        var (request, error) = EventRequest.Parse(http.Request);
        if (error is not null)
        {
            return error;
        }

        // An admin sees every event unless it names a tenant (or a VM, which belongs to the tenant it acts on).
        var principal = http.Principal();
        var tenant = principal.IsAdmin && string.IsNullOrEmpty(http.Request.Query["tenant"]) && request!.VmName is null
            ? (TenantId?)null
            : OrchestratorApi.Acting(http);

        VmId? vmId = null;
        if (request!.VmName is { } name)
        {
            var proxy = await scheduler.GetAsync(ct);
            var found = await proxy.Ask<SchedulerReplies.VmFound>(new SchedulerQueries.GetVm(tenant!.Value, name), TimeSpan.FromSeconds(10), ct);
            if (found.Vm is null)
            {
                return OrchestratorApi.Problem(StatusCodes.Status404NotFound, "not found", $"no VM named '{OrchestratorApi.Shorten(name)}'");
            }

            vmId = found.Vm.Id; // by id: a VM deleted and created again under the name is another VM
        }

        var feed = await Task.Run(() => EventFeed.Get(system), ct);
        bool Wanted(EventEnvelope e) => e.Event is ILedgerEvent
                                        && (tenant is null || e.Tags.Contains(EventTags.Tenant(tenant.Value)))
                                        && (request.Types is null || request.Types.Contains(e.Event.GetType().Name))
                                        && (vmId is null || e.Event is IVmLedgerEvent { } vmEvent && vmEvent.VmId == vmId);

        // Following: the node's one live feed from here on, the journal read only for what came before it. (A live
        // query per stream polled the journal four times a second each: 300 streams starved every other request.)
        using var follower = request.Follow ? await feed.FollowAsync(ct) : null;
        var past = feed.Read(tenant, request.From, follow: false);
        if (follower is not null)
        {
            past = past.TakeWhile(e => ((Sequence)e.Offset).Value <= follower.After);
        }

        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no"; // nginx: pass each event on at once
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await http.Response.StartAsync(ct); // the client knows the stream is open before the first event

        // A client that goes away, or the node stopping, ends the stream; so does the query ending (follow=false).
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
        var (kill, queue) = past
            .ViaMaterialized(KillSwitches.Single<EventEnvelope>(), Keep.Right)
            .ToMaterialized(Sink.Queue<EventEnvelope>(), Keep.Both)
            .Run(feed.Materializer);
        await using var _ = stop.Token.Register(kill.Shutdown);
        OrchestratorMetrics.EventStreamClients.Add(1);
        try
        {
            var after = request.From is Sequence { Value: var resumed } ? Math.Max(resumed, follower?.After ?? 0) : follower?.After ?? 0;
            while (await queue.PullAsync() is { HasValue: true } next)
            {
                if (Wanted(next.Value))
                {
                    await http.Response.WriteAsync(Frame(next.Value), stop.Token);
                    await http.Response.Body.FlushAsync(stop.Token);
                }
            }

            if (follower is not null)
            {
                await FollowAsync(http.Response, follower.Reader, after, Wanted, stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && stop.IsCancellationRequested
                                   || CoordinatedShutdown.Get(system).ShutdownReason is not null)
        {
            // The client went away, or the node is stopping (its streams end with the actor system): nothing to tell.
        }
        catch (FollowerOverflowException ex)
        {
            logs.CreateLogger(typeof(EventStream)).LogInformation("an event stream was cut off: {Reason}", ex.Message);
        }
        catch (Exception ex)
        {
            // Headers are out: all a client can be told is that the stream ended. It resumes from its last id.
            logs.CreateLogger(typeof(EventStream)).LogWarning(ex, "an event stream ended early");
        }
        finally
        {
            OrchestratorMetrics.EventStreamClients.Add(-1);
            kill.Shutdown();
        }

        return Results.Empty;
    }

    /// <summary>
    /// The live part of a stream: each event after <paramref name="after"/> the caller may see, a comment line when
    /// none came for <see cref="Heartbeat"/>. Waits are asynchronous: an idle stream holds no thread.
    /// </summary>
    private static async Task FollowAsync(HttpResponse response, System.Threading.Channels.ChannelReader<EventEnvelope> live, long after,
        Func<EventEnvelope, bool> wanted, CancellationToken ct)
    {
        while (true)
        {
            using var beat = CancellationTokenSource.CreateLinkedTokenSource(ct);
            beat.CancelAfter(Heartbeat);
            bool more;
            try
            {
                more = await live.WaitToReadAsync(beat.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await response.WriteAsync(": keepalive\n\n", ct);
                await response.Body.FlushAsync(ct);
                continue;
            }

            if (!more)
            {
                return;
            }

            while (live.TryRead(out var envelope))
            {
                var offset = ((Sequence)envelope.Offset).Value;
                if (offset > after && wanted(envelope))
                {
                    await response.WriteAsync(Frame(envelope), ct);
                }

                after = Math.Max(after, offset);
            }

            await response.Body.FlushAsync(ct);
        }
    }

    /// <summary>One event as Server-Sent Events lines: its offset, its type, its JSON on one line.</summary>
    public static string Frame(EventEnvelope envelope)
    {
        var offset = ((Sequence)envelope.Offset).Value;
        var evt = (ILedgerEvent)envelope.Event;
        var json = PublicEvent.ToJson(offset, evt, EventTags.TenantOf(envelope.Tags), envelope.Timestamp).ToJsonString(PublicEvent.Json);
        return $"id: {offset.ToString(CultureInfo.InvariantCulture)}\nevent: {evt.GetType().Name}\ndata: {json}\n\n";
    }

    /// <summary>The query of one <c>GET /v1/events</c>, checked.</summary>
    /// <param name="Types">null: every type.</param>
    /// <param name="From">where the stream starts: after an offset, the last n events, or the first.</param>
    internal sealed record EventRequest(IReadOnlySet<string>? Types, string? VmName, bool Follow, Offset From)
    {
        public static (EventRequest? Request, IResult? Error) Parse(HttpRequest http)
        {
            var errors = new List<FieldError>();
            var query = http.Query;

            HashSet<string>? types = null;
            var named = query["type"].SelectMany(v => (v ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList();
            if (named.Count > 0)
            {
                var unknown = named.Where(t => !KnownTypes.Contains(t)).Distinct(StringComparer.Ordinal).ToList();
                if (unknown.Count > 0)
                {
                    errors.Add(new FieldError("type",
                        $"unknown event type{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Take(10).Select(u => $"'{OrchestratorApi.Shorten(u)}'"))}" +
                        $"{(unknown.Count > 10 ? ", …" : "")} (known: {string.Join(", ", KnownTypes.Order(StringComparer.Ordinal))})"));
                }

                types = named.ToHashSet(StringComparer.Ordinal);
            }

            var follow = true;
            if (query["follow"].ToString() is { Length: > 0 } followText && !bool.TryParse(followText, out follow))
            {
                errors.Add(new FieldError("follow", "must be true or false"));
            }

            long? after = null;
            // A reconnecting EventSource repeats its URL and adds the header: the header wins.
            var lastEventId = http.Headers["Last-Event-ID"].ToString();
            var afterText = lastEventId.Length > 0 ? lastEventId : query["after"].ToString();
            var afterField = lastEventId.Length > 0 ? "Last-Event-ID" : "after";
            if (afterText.Length > 0)
            {
                if (long.TryParse(afterText, NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
                {
                    after = offset;
                }
                else
                {
                    errors.Add(new FieldError(afterField, "must be an event id (a whole number, 0 or more)"));
                }
            }

            int? last = null;
            if (query["last"].ToString() is { Length: > 0 } lastText && lastEventId.Length == 0)
            {
                if (int.TryParse(lastText, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count is >= 1 and <= MaxLast)
                {
                    last = count;
                }
                else
                {
                    errors.Add(new FieldError("last", $"must be a whole number from 1 to {MaxLast}"));
                }

                if (query["after"].ToString().Length > 0)
                {
                    errors.Add(new FieldError("last", "give either after or last, not both"));
                }
            }

            var vm = query["vm"].ToString() is { Length: > 0 } vmName ? vmName : null;
            if (errors.Count > 0)
            {
                return (null, OrchestratorApi.Problem(StatusCodes.Status400BadRequest, "invalid request",
                    string.Join("; ", errors.Select(e => $"{e.Field} {e.Message}")), errors));
            }

            var from = after is { } a ? Offset.Sequence(a) : last is { } n ? Offset.FromEnd(n) : Offset.NoOffset();
            return (new EventRequest(types, vm, follow, from), null);
        }
    }
}
