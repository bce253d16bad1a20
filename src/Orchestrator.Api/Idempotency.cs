using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Orchestrator.Api;

/// <summary>
/// <c>Idempotency-Key</c> on creates (Stripe's contract): the first request with a key runs, and its answer, when it
/// succeeded, is kept for a day; a retry with the same key and the same body gets that answer again without running
/// twice; the same key with another body is refused (422); a retry while the first is still running gets 409. A
/// refusal is not kept: the retry runs again and is judged on the state it finds. Keys are per calling tenant and
/// per tenant acted for, so neither tenants nor an admin acting for two of them can see one answer for another.
/// Kept in this node's memory, bounded in entries and bytes (the oldest go first). A VM create also hands its key to
/// the ledger (<see cref="Idempotency.TokenOf"/>), which journals it with the VM: after a restart, an eviction or a
/// scheduler failover, a retried create gets the VM its key made (201, as it is now) rather than a second one or 409.
/// </summary>
public sealed class IdempotencyCache(int maxEntries = IdempotencyCache.DefaultMaxEntries, long maxBytes = IdempotencyCache.DefaultMaxBytes)
{
    public static readonly TimeSpan KeepFor = TimeSpan.FromHours(24);
    public const int DefaultMaxEntries = 10_000;
    public const long DefaultMaxBytes = 32L * 1024 * 1024;

    /// <summary>An answer larger than this is not kept (a create's answer is a few KiB).</summary>
    public const int MaxAnswerBytes = 256 * 1024;

    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _byAge = new(); // oldest first
    private long _bytes;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>What the kept answers and keys take, roughly.</summary>
    public long Bytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    public sealed class Entry(string key, string bodyHash, DateTime at)
    {
        public string Key { get; } = key;
        public string BodyHash { get; } = bodyHash;
        public DateTime At { get; } = at;
        public StoredResponse? Response { get; internal set; }

        internal long Size => 2L * (Key.Length + BodyHash.Length) + (Response?.Body.Length ?? 0) + 128;
    }

    public sealed record StoredResponse(int Status, string? ContentType, byte[] Body);

    /// <summary>The entry for <paramref name="key"/>: a fresh one (the caller runs the request), or the one already there.</summary>
    public (Entry Entry, bool Fresh) Claim(string key, string bodyHash, DateTime? now = null)
    {
        var at = now ?? DateTime.UtcNow;
        lock (_gate)
        {
            while (_byAge.First is { } oldest && at - oldest.Value.At > KeepFor)
            {
                Remove(oldest);
            }

            if (_entries.TryGetValue(key, out var existing))
            {
                return (existing.Value, false);
            }

            var fresh = new Entry(key, bodyHash, at);
            _entries[key] = _byAge.AddLast(fresh);
            _bytes += fresh.Size;
            Trim();
            return (fresh, true);
        }
    }

    /// <summary>Keeps a successful answer for retries; anything else, or one too large, is forgotten with its key.</summary>
    public void Complete(Entry entry, StoredResponse response)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue(entry.Key, out var node) || !ReferenceEquals(node.Value, entry))
            {
                return; // evicted meanwhile
            }

            if (response.Status is < 200 or >= 300 || response.Body.Length > MaxAnswerBytes)
            {
                Remove(node);
                return;
            }

            _bytes -= entry.Size;
            entry.Response = response;
            _bytes += entry.Size;
            Trim();
        }
    }

    /// <summary>Forgets the entry (its request failed): a retry runs for real.</summary>
    public void Release(Entry entry)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(entry.Key, out var node) && ReferenceEquals(node.Value, entry))
            {
                Remove(node);
            }
        }
    }

    private void Trim()
    {
        while ((_entries.Count > maxEntries || _bytes > maxBytes) && _byAge.First is { } oldest)
        {
            Remove(oldest);
        }
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _entries.Remove(node.Value.Key);
        _byAge.Remove(node);
        _bytes -= node.Value.Size;
    }
}

public static class Idempotency
{
    public const string Header = "Idempotency-Key";

    private static readonly object TokenItem = new();

    /// <summary>The request's key as the ledger keeps it (digests of who asked, the route and the key, and of the body); null without one.</summary>
    public static Domain.Ledger.IdempotencyToken? TokenOf(HttpContext http) =>
        http.Items.TryGetValue(TokenItem, out var token) ? token as Domain.Ledger.IdempotencyToken : null;

    public static RouteHandlerBuilder Idempotent(this RouteHandlerBuilder endpoint, IdempotencyCache cache) =>
        endpoint.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var presented = http.Request.Headers[Header].ToString();
            if (string.IsNullOrEmpty(presented))
            {
                return await next(context);
            }

            if (presented.Length > 255 || presented.Any(c => c < 0x21 || c > 0x7e))
            {
                return OrchestratorApi.Problem(StatusCodes.Status400BadRequest, "invalid request",
                    $"{Header} must be 1-255 printable ASCII characters", [new Domain.Vms.FieldError(Header, "must be 1-255 printable ASCII characters")]);
            }

            // The body is read once here (buffered) so the endpoint can read it again.
            http.Request.EnableBuffering();
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
            http.Request.Body.Position = 0;
            var bodyHash = Convert.ToHexStringLower(SHA256.HashData(buffer.ToArray()));
            // Scoped to the caller's tenant and to the tenant it acts for: an admin's key sent for tenant a and again
            // for tenant b are two requests, not a retry.
            var principal = http.Principal();
            var acting = OrchestratorApi.Acting(http);
            var key = $"{principal.Tenant.Value}\n{acting.Value}\n{http.Request.Method} {http.Request.Path}\n{presented}";
            http.Items[TokenItem] = new Domain.Ledger.IdempotencyToken(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key))), bodyHash);
            var (entry, fresh) = cache.Claim(key, bodyHash);
            if (!fresh)
            {
                if (entry.BodyHash != bodyHash)
                {
                    return OrchestratorApi.Problem(StatusCodes.Status422UnprocessableEntity, "idempotency key reused",
                        $"this {Header} was used with another body; use a new key for a new request");
                }

                return entry.Response is { } stored
                    ? new ReplayedResult(stored)
                    : OrchestratorApi.Problem(StatusCodes.Status409Conflict, "request in progress",
                        $"a request with this {Header} is still running; retry later");
            }

            try
            {
                var result = await next(context);
                if (result is not IResult answer)
                {
                    cache.Release(entry);
                    return result;
                }

                var stored = await RenderAsync(answer, http);
                cache.Complete(entry, stored);
                return new ReplayedResult(stored);
            }
            catch
            {
                cache.Release(entry);
                throw;
            }
        });

    /// <summary>Runs a result against a scratch context to keep its status, content type and body.</summary>
    private static async Task<IdempotencyCache.StoredResponse> RenderAsync(IResult result, HttpContext http)
    {
        var scratch = new DefaultHttpContext { RequestServices = http.RequestServices };
        using var body = new MemoryStream();
        scratch.Response.Body = body;
        await result.ExecuteAsync(scratch);
        return new IdempotencyCache.StoredResponse(scratch.Response.StatusCode, scratch.Response.ContentType, body.ToArray());
    }

    private sealed class ReplayedResult(IdempotencyCache.StoredResponse stored) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = stored.Status;
            if (stored.ContentType is not null)
            {
                httpContext.Response.ContentType = stored.ContentType;
            }

            await httpContext.Response.Body.WriteAsync(stored.Body);
        }
    }
}
