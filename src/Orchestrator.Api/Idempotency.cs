using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Orchestrator.Api;

/// <summary>
/// <c>Idempotency-Key</c> on creates (Stripe's contract): the first request with a key runs, and its answer is kept
/// for a day; a retry with the same key and the same body gets that answer again without running twice; the same key
/// with another body is refused (422); a retry while the first is still running gets 409. Keys are per tenant, so
/// tenants can't see each other's answers. Kept in this node's memory: after a restart a retried create finds the
/// VM's name taken (409) rather than making a second one.
/// </summary>
public sealed class IdempotencyCache
{
    public static readonly TimeSpan KeepFor = TimeSpan.FromHours(24);
    private const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    internal sealed class Entry(string bodyHash)
    {
        public string BodyHash { get; } = bodyHash;
        public DateTime At { get; } = DateTime.UtcNow;
        public StoredResponse? Response { get; set; }
    }

    internal sealed record StoredResponse(int Status, string? ContentType, byte[] Body);

    internal (Entry Entry, bool Fresh) Claim(string key, string bodyHash)
    {
        if (_entries.Count > MaxEntries)
        {
            foreach (var old in _entries.Where(e => DateTime.UtcNow - e.Value.At > KeepFor).Select(e => e.Key).ToList())
            {
                _entries.TryRemove(old, out _);
            }
        }

        var fresh = new Entry(bodyHash);
        var entry = _entries.GetOrAdd(key, fresh);
        if (!ReferenceEquals(entry, fresh) && DateTime.UtcNow - entry.At > KeepFor && _entries.TryUpdate(key, fresh, entry))
        {
            return (fresh, true);
        }

        return (entry, ReferenceEquals(entry, fresh));
    }

    internal void Release(string key, Entry entry) => _entries.TryRemove(new KeyValuePair<string, Entry>(key, entry));
}

public static class Idempotency
{
    public const string Header = "Idempotency-Key";

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
            var principal = http.Principal();
            var key = $"{principal.Tenant.Value}\n{http.Request.Method} {http.Request.Path}\n{presented}";
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
                    cache.Release(key, entry);
                    return result;
                }

                var stored = await RenderAsync(answer, http);
                if (stored.Status >= 500)
                {
                    cache.Release(key, entry); // a failure worth retrying for real
                }
                else
                {
                    entry.Response = stored;
                }

                return new ReplayedResult(stored);
            }
            catch
            {
                cache.Release(key, entry);
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
