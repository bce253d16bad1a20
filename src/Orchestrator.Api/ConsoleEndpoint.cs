using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Orchestrator.Actors.Consoles;
using Orchestrator.Actors.Hosting;

namespace Orchestrator.Api;

/// <summary>
/// <c>GET /v1/vms/{name}/console</c>: a WebSocket carrying the guest's serial port both ways. Binary frames are raw
/// serial bytes (in: keystrokes, out: what the guest prints, starting with the recent scrollback); text frames are small
/// JSON notices from the node (<c>{"type":"attached","mode":"write"}</c>, <c>taken-over</c>, <c>dropped</c>,
/// <c>ended</c>…). The attach is decided before the upgrade, so another tenant's VM is a plain 404.
/// </summary>
public static class ConsoleEndpoint
{
    /// <summary>The most one client frame may carry: keystrokes and pastes, not files.</summary>
    public const int MaxInputFrame = 4096;

    private static readonly TimeSpan AttachWait = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The console with the key's header, and for browsers (whose WebSocket cannot send a header): a ticket from
    /// <c>POST /v1/vms/{name}/console/ticket</c> (with the key), then <c>GET /v1/console?ticket=</c>, outside the keyed
    /// group. The ticket carries the key's grant for that one VM, once, for <see cref="ConsoleTickets.Lifetime"/>, and
    /// only while the key itself still works.
    /// </summary>
    public static RouteGroupBuilder MapConsole(this RouteGroupBuilder v1, IEndpointRouteBuilder app, ApiAuthenticator auth)
    {
        var tickets = new ConsoleTickets(TimeProvider.System);
        v1.MapGet("/vms/{name}/console", (string name, HttpContext http, ActorSystem system, IRequiredActor<SchedulerProxy> scheduler,
                IHostApplicationLifetime lifetime, CancellationToken ct) =>
            ConsoleAsync(new ConsoleTicket(http.Principal(), OrchestratorApi.Acting(http), name, DateTimeOffset.MaxValue), http, system, scheduler,
                lifetime, ct));
        v1.MapPost("/vms/{name}/console/ticket", (string name, HttpContext http) => Results.Json(new
        {
            ticket = tickets.Issue(http.Principal(), OrchestratorApi.Acting(http), name),
            expiresInSeconds = (int)ConsoleTickets.Lifetime.TotalSeconds,
        }, OrchestratorApi.Json));
        app.MapGet("/v1/console", async (HttpContext http, ActorSystem system, IRequiredActor<SchedulerProxy> scheduler,
            IHostApplicationLifetime lifetime, CancellationToken ct) =>
        {
            var ticket = tickets.Redeem(http.Request.Query["ticket"].ToString());
            return ticket is null || !await auth.StillHoldsAsync(ticket.Principal, ct)
                ? OrchestratorApi.Problem(StatusCodes.Status401Unauthorized, "unauthorized",
                    "the console ticket is missing, used or expired, or its key no longer works: ask for one with POST /v1/vms/{name}/console/ticket")
                : await ConsoleAsync(ticket, http, system, scheduler, lifetime, ct);
        }).ExcludeFromDescription();
        return v1;
    }

    private static async Task<IResult> ConsoleAsync(ConsoleTicket grant, HttpContext http, ActorSystem system, IRequiredActor<SchedulerProxy> scheduler,
        IHostApplicationLifetime lifetime, CancellationToken ct)
    {
        var name = grant.VmName;
        var forceText = http.Request.Query["force"].ToString();
        if (forceText is not ("" or "true" or "false"))
        {
            return OrchestratorApi.Invalid([new Domain.Vms.FieldError("force", "must be true or false")]);
        }

        if (!http.WebSockets.IsWebSocketRequest)
        {
            return OrchestratorApi.Problem(StatusCodes.Status400BadRequest, "bad request", "the console is a WebSocket: send an upgrade request");
        }

        var attach = new ConsoleCommands.Attach(grant.Tenant, name, grant.Principal.CanWrite, forceText == "true");
        // The session drops output rather than queue it past this bound: a slow client never grows the node's memory.
        var frames = Channel.CreateBounded<ConsoleFrame>(new BoundedChannelOptions(ConsoleSessionActor.ClientBuffer)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        var outcome = new TaskCompletionSource<ConsoleAttachOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        var proxy = await scheduler.GetAsync(ct);
        var session = system.ActorOf(ConsoleSessionActor.Props(proxy, attach, frames.Writer, outcome));
        try
        {
            var attached = await outcome.Task.WaitAsync(AttachWait, ct);
            if (attached.VmId is null)
            {
                return attached.NotFound
                    ? OrchestratorApi.Problem(StatusCodes.Status404NotFound, "not found", $"no VM named '{OrchestratorApi.Shorten(name)}'")
                    : OrchestratorApi.Problem(StatusCodes.Status409Conflict, "conflict",
                        $"cannot attach to '{OrchestratorApi.Shorten(name)}': {attached.Refusal}");
            }

            using var socket = await http.WebSockets.AcceptWebSocketAsync();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
            var typing = ReadKeystrokesAsync(socket, session, attached.Writing, stop.Token);
            await WriteFramesAsync(socket, frames.Reader, stop.Token);
            await stop.CancelAsync();
            await CloseQuietlyAsync(socket);
            await typing;
            return Results.Empty;
        }
        catch (TimeoutException)
        {
            return OrchestratorApi.Problem(StatusCodes.Status504GatewayTimeout, "host did not answer",
                $"the VM's host did not answer the attach within {AttachWait.TotalSeconds:0} s");
        }
        finally
        {
            system.Stop(session);
        }
    }

    /// <summary>The client's binary frames become keystrokes (a reader's are dropped here already); its close ends the session.</summary>
    private static async Task ReadKeystrokesAsync(WebSocket socket, IActorRef session, bool writing, CancellationToken ct)
    {
        var buffer = new byte[MaxInputFrame];
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var received = await socket.ReceiveAsync(buffer, ct);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                if (received.MessageType == WebSocketMessageType.Binary && received.Count > 0 && writing)
                {
                    session.Tell(new ConsoleSessionActor.Typed(buffer.AsSpan(0, received.Count).ToArray()));
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away, or the session ended and closed the socket.
        }
        finally
        {
            // Ends the session: its channel completes and the writer below returns.
            session.Tell(PoisonPill.Instance);
        }
    }

    private static async Task WriteFramesAsync(WebSocket socket, ChannelReader<ConsoleFrame> frames, CancellationToken ct)
    {
        try
        {
            await foreach (var frame in frames.ReadAllAsync(ct))
            {
                switch (frame)
                {
                    case ConsoleFrame.Bytes { Data.Length: > 0 } bytes:
                        await socket.SendAsync(bytes.Data, WebSocketMessageType.Binary, true, ct);
                        break;
                    case ConsoleFrame.Notice notice:
                        var json = JsonSerializer.SerializeToUtf8Bytes(new { type = notice.Kind, message = notice.Message }, OrchestratorApi.Json);
                        await socket.SendAsync(json, WebSocketMessageType.Text, true, ct);
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away.
        }
    }

    private static async Task CloseQuietlyAsync(WebSocket socket)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "console session ended", timeout.Token);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
        }
    }
}
