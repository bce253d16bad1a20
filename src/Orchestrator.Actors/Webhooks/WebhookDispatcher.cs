using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Serialization;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Actors.Webhooks;

/// <summary>
/// How webhooks are delivered: attempts and backoff, time allowed per attempt, whether private addresses may be
/// targets, and the box their secrets are sealed in at rest (null: kept as given, for tests and simulations).
/// </summary>
public sealed record WebhookSettings(int Attempts, TimeSpan FirstRetry, TimeSpan Timeout, bool AllowPrivateAddresses, SecretBox? Secrets = null)
{
    public static readonly WebhookSettings Default = new(5, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), false);
}

/// <summary>One delivery of one event to one webhook, as shown to its tenant.</summary>
public sealed record WebhookDelivery(
    string DeliveryId, string WebhookId, long EventId, string EventType, string Status, int Attempts, int? LastStatusCode, string? LastError,
    DateTimeOffset At) : IOrchestratorMessage
{
    public const string Pending = "pending";
    public const string Delivered = "delivered";
    public const string Failed = "failed";
}

public static class WebhookProtocol
{
    /// <summary>From the scheduler whenever the set of webhooks changes (and after recovery).</summary>
    public sealed record Hooks(IReadOnlyList<WebhookRecord> Webhooks);

    public sealed record GetDeliveries(TenantId Tenant, string WebhookId) : IOrchestratorMessage;

    public sealed record Deliveries(IReadOnlyList<WebhookDelivery> Items) : IOrchestratorMessage;

    /// <summary>
    /// Where the dispatcher is, saved: the offset after which deliveries may still be owed, and the recent deliveries
    /// (pending ones among them are resumed, finished ones are not sent again).
    /// </summary>
    public sealed record Saved(long After, DateTimeOffset Since, IReadOnlyList<WebhookDelivery> Recent) : IProjectionSnapshot;
}

/// <summary>
/// Delivers the ledger's events to tenants' webhooks: a POST of the event's public form (<see cref="PublicEvent"/>, the
/// same as Server-Sent Events carry) signed with the webhook's secret (<c>X-Orchestrator-Signature: sha256=HEX</c> of the
/// body), retried with exponential backoff, then marked failed. It reads the journal from where it left off, so a
/// delivery in flight when the scheduler moves is resumed by the next scheduler's dispatcher: at least once, and the
/// body's <c>id</c> (the event's) and the <c>X-Orchestrator-Delivery</c> header stay the same for every attempt.
/// The last 100 deliveries per webhook are kept, and saved with it.
/// </summary>
public sealed class WebhookDispatcher : JournalProjection
{
    public const string SignatureHeader = "X-Orchestrator-Signature";
    private const int KeptPerWebhook = 100;

    private readonly WebhookSettings _settings;
    private readonly HttpClient _http;
    private readonly Dictionary<string, WebhookRecord> _hooks = [];
    private readonly Dictionary<string, LinkedList<WebhookDelivery>> _deliveries = [];
    private readonly Dictionary<string, byte[]> _bodies = [];

    /// <param name="since">when the scheduler recovered: on the first start of all, events from then on are delivered.</param>
    public WebhookDispatcher(WebhookSettings settings, DateTimeOffset since) : base("webhooks", since)
    {
        _settings = settings;
        _http = CreateClient(settings);
        Command<WebhookProtocol.Hooks>(hooks =>
        {
            _hooks.Clear();
            foreach (var hook in hooks.Webhooks)
            {
                _hooks[hook.Id] = hook;
            }

            foreach (var gone in _deliveries.Keys.Where(id => !_hooks.ContainsKey(id)).ToList())
            {
                _deliveries.Remove(gone);
                Changed();
            }

            Configured();
        });
        Command<Attempt>(attempt => Send(attempt));
        Command<Attempted>(OnAttempted);
        Command<WebhookProtocol.GetDeliveries>(query => Sender.Tell(new WebhookProtocol.Deliveries(
            _hooks.TryGetValue(query.WebhookId, out var hook) && hook.Tenant == query.Tenant && _deliveries.TryGetValue(query.WebhookId, out var list)
                ? list.ToList()
                : [])));
    }

    public static Props Props(WebhookSettings settings, DateTimeOffset since) => Akka.Actor.Props.Create(() => new WebhookDispatcher(settings, since));

    protected override void PostStop()
    {
        _http.Dispose();
        base.PostStop();
    }

    /// <summary>The body a receiver gets: the event's public form.</summary>
    public static byte[] Payload(JournaledEvent journaled) => Encoding.UTF8.GetBytes(PublicEvent.ToJson(journaled).ToJsonString(PublicEvent.Json));

    public static string Sign(string secret, byte[] body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    protected override void Handle(JournaledEvent journaled)
    {
        if (journaled.Tenant is not { } tenant)
        {
            return;
        }

        var type = journaled.Event.GetType().Name;
        foreach (var hook in _hooks.Values.Where(h => h.Tenant == tenant && h.Wants(type) && h.CreatedAt <= journaled.WrittenAt))
        {
            var id = $"{hook.Id}.{journaled.Offset}";
            var known = _deliveries.GetValueOrDefault(hook.Id)?.FirstOrDefault(d => d.DeliveryId == id);
            if (known is { Status: not WebhookDelivery.Pending })
            {
                continue; // finished before the move: read again, not sent again
            }

            if (known is null)
            {
                Record(new WebhookDelivery(id, hook.Id, journaled.Offset, type, WebhookDelivery.Pending, 0, null, null, DateTimeOffset.UtcNow));
            }

            _bodies[id] = Payload(journaled);
            Send(new Attempt(id, hook.Id));
        }
    }

    /// <summary>Owed: every event from the oldest still pending delivery on.</summary>
    protected override IProjectionSnapshot Snapshot(long handled) => new WebhookProtocol.Saved(
        _deliveries.Values.SelectMany(list => list).Where(d => d.Status == WebhookDelivery.Pending).Select(d => d.EventId - 1).Append(handled).Min(),
        Since,
        _deliveries.Values.SelectMany(list => list).ToList());

    protected override void Restore(IProjectionSnapshot snapshot)
    {
        _deliveries.Clear();
        foreach (var delivery in ((WebhookProtocol.Saved)snapshot).Recent)
        {
            Record(delivery);
        }
    }

    private void Send(Attempt attempt)
    {
        if (!_hooks.TryGetValue(attempt.WebhookId, out var hook) || !_bodies.TryGetValue(attempt.DeliveryId, out var body))
        {
            _bodies.Remove(attempt.DeliveryId); // the webhook was deleted meanwhile
            return;
        }

        string secret;
        try
        {
            secret = _settings.Secrets?.Open(hook.Secret) ?? hook.Secret;
        }
        catch (CryptographicException)
        {
            // Sealed on a node with another key: the control nodes do not share one (orchestrator.secrets.key-file).
            Self.Tell(new Attempted(attempt, null, "cannot open the webhook's secret: it was sealed with another secrets key"));
            return;
        }

        var request = new HttpRequestMessage(HttpMethod.Post, hook.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.Add(SignatureHeader, Sign(secret, body));
        request.Headers.Add("X-Orchestrator-Delivery", attempt.DeliveryId);
        var http = _http;
        Task.Run(async () =>
        {
            using (request)
            {
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                return (int)response.StatusCode;
            }
        }).PipeTo(Self, success: status => new Attempted(attempt, status, null), failure: ex => new Attempted(attempt, null, Describe(ex)));
    }

    private void OnAttempted(Attempted result)
    {
        if (!_deliveries.TryGetValue(result.Attempt.WebhookId, out var list)
            || list.FirstOrDefault(d => d.DeliveryId == result.Attempt.DeliveryId) is not { } delivery)
        {
            _bodies.Remove(result.Attempt.DeliveryId);
            return;
        }

        var attempts = delivery.Attempts + 1;
        var ok = result.Status is >= 200 and < 300;
        var error = result.Error ?? (ok ? null : $"HTTP {result.Status}");
        var status = ok ? WebhookDelivery.Delivered : attempts >= _settings.Attempts ? WebhookDelivery.Failed : WebhookDelivery.Pending;
        // Each attempt by how it went: delivered, retried (pending) or given up (failed).
        OrchestratorMetrics.WebhookDeliveries.Add(1, new KeyValuePair<string, object?>("outcome", status));
        Replace(list, delivery, delivery with { Status = status, Attempts = attempts, LastStatusCode = result.Status, LastError = error, At = DateTimeOffset.UtcNow });
        Changed();
        if (status == WebhookDelivery.Pending)
        {
            var delay = _settings.FirstRetry * Math.Pow(2, attempts - 1);
            Timers.StartSingleTimer(result.Attempt.DeliveryId, result.Attempt, delay);
        }
        else
        {
            _bodies.Remove(result.Attempt.DeliveryId);
            if (status == WebhookDelivery.Failed)
            {
                Log.Warning("webhook {0}: delivery {1} of event {2} failed after {3} attempts: {4}", delivery.WebhookId, delivery.DeliveryId,
                    delivery.EventId, attempts, error);
            }
        }
    }

    private void Record(WebhookDelivery delivery)
    {
        if (!_deliveries.TryGetValue(delivery.WebhookId, out var list))
        {
            _deliveries[delivery.WebhookId] = list = new LinkedList<WebhookDelivery>();
        }

        list.AddLast(delivery);
        Changed();
        while (list.Count > KeptPerWebhook && list.First!.Value.Status != WebhookDelivery.Pending)
        {
            list.RemoveFirst();
        }
    }

    private static void Replace(LinkedList<WebhookDelivery> list, WebhookDelivery old, WebhookDelivery updated) =>
        list.Find(old)!.Value = updated;

    private static string Describe(Exception ex) => ex switch
    {
        AggregateException { InnerException: { } inner } => Describe(inner),
        TaskCanceledException => "timed out",
        HttpRequestException { InnerException: { } inner } => inner.Message,
        _ => ex.Message,
    };

    /// <summary>
    /// An HTTP client that, unless allowed, connects only to public addresses (<see cref="PublicAddresses"/>) — checked
    /// on the address actually connected to, so a name that resolves elsewhere is refused too.
    /// </summary>
    private static HttpClient CreateClient(WebhookSettings settings)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = settings.Timeout,
            ConnectCallback = async (context, ct) =>
            {
                var addresses = await Dns.GetHostAddressesAsync(context.DnsEndPoint.Host, ct);
                var allowed = addresses.Where(a => settings.AllowPrivateAddresses || PublicAddresses.IsPublic(a)).ToList();
                if (allowed.Count == 0)
                {
                    throw new HttpRequestException($"{context.DnsEndPoint.Host} is not a public address (orchestrator.webhooks.allow-private-addresses)");
                }

                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(allowed.ToArray(), context.DnsEndPoint.Port, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { Timeout = settings.Timeout };
    }

    private sealed record Attempt(string DeliveryId, string WebhookId);

    private sealed record Attempted(Attempt Attempt, int? Status, string? Error);
}
