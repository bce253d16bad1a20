using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain.Tenants;

namespace Orchestrator.Api;

/// <summary>A key just issued: the whole key (shown once) and what the ledger keeps of it.</summary>
public sealed record IssuedKey(string KeyId, string Key, string SecretHash);

/// <summary>
/// API keys: random, shown once, kept only as a SHA-256 hash, compared in constant time, never logged. (Keys are
/// 256-bit random, so a fast hash is enough: there is nothing to brute-force.) Issued keys read
/// <c>orc_&lt;key id&gt;_&lt;secret&gt;</c>: the id finds the record, the secret proves the key. The node's bootstrap
/// admin key (in its data dir) is <c>orc_&lt;secret&gt;</c> and lives outside the ledger.
/// </summary>
public static class ApiKeys
{
    public const string Prefix = "orc_";

    /// <summary>The bootstrap admin key.</summary>
    public static string Generate() => Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public static IssuedKey Issue()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        return new IssuedKey(id, $"{Prefix}{id}_{secret}", Hash(secret));
    }

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Splits an issued key into its id and secret; false for anything else (the bootstrap key included).</summary>
    public static bool TrySplit(string presented, out string keyId, out string secret)
    {
        keyId = secret = "";
        if (!presented.StartsWith(Prefix, StringComparison.Ordinal) || presented.Length != Prefix.Length + 16 + 1 + 64
            || presented[Prefix.Length + 16] != '_')
        {
            return false;
        }

        keyId = presented.Substring(Prefix.Length, 16);
        secret = presented[(Prefix.Length + 17)..];
        return keyId.All(char.IsAsciiHexDigitLower) && secret.All(char.IsAsciiHexDigitLower);
    }

    public static bool HashesEqual(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
}

/// <summary>Why a request is not let in: 401 (no valid key) or 403 (the key's tenant is disabled).</summary>
public sealed record AuthFailure(int Status, string Detail);

/// <summary>
/// Turns a presented key into a principal. Issued keys are looked up in the ledger through the scheduler and cached
/// for a moment (positive and negative), so a burst of requests, or of bogus keys, costs one lookup; a revoke or a
/// disable made through this node drops the cache at once, elsewhere it takes effect within the cache's lifetime.
/// </summary>
public sealed class ApiAuthenticator
{
    private static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(2);

    /// <summary>The key id of the bootstrap admin key's principal (issued key ids are hex, so never this).</summary>
    private const string BootstrapKeyId = "bootstrap";
    private readonly string _bootstrapHash;
    private readonly Func<string, CancellationToken, Task<SchedulerReplies.KeyFound>> _findKey;
    private readonly ConcurrentDictionary<string, (SchedulerReplies.KeyFound Found, DateTime Until)> _cache = new(StringComparer.Ordinal);

    public ApiAuthenticator(string bootstrapAdminKey, Func<string, CancellationToken, Task<SchedulerReplies.KeyFound>> findKey)
    {
        _bootstrapHash = ApiKeys.Hash(bootstrapAdminKey);
        _findKey = findKey;
    }

    public async Task<(ApiPrincipal? Principal, AuthFailure? Failure)> AuthenticateAsync(string? presented, CancellationToken ct)
    {
        var invalid = new AuthFailure(401, "send a valid API key as 'Authorization: Bearer <key>'");
        if (string.IsNullOrEmpty(presented) || presented.Length > 256)
        {
            return (null, invalid);
        }

        if (!ApiKeys.TrySplit(presented, out var keyId, out var secret))
        {
            return ApiKeys.HashesEqual(ApiKeys.Hash(presented), _bootstrapHash)
                ? (new ApiPrincipal(Domain.TenantId.System, ApiRole.Admin, BootstrapKeyId), null)
                : (null, invalid);
        }

        var found = await FindAsync(keyId, ct);
        if (found.Key is not { IsRevoked: false } key || !ApiKeys.HashesEqual(ApiKeys.Hash(secret), key.SecretHash))
        {
            return (null, invalid);
        }

        if (found.Tenant is not { Disabled: false })
        {
            return (null, new AuthFailure(403, $"tenant '{key.Tenant}' is disabled"));
        }

        var role = key.Role switch
        {
            KeyRole.Admin => ApiRole.Admin,
            KeyRole.Member => ApiRole.Member,
            _ => ApiRole.ReadOnly,
        };
        return (new ApiPrincipal(key.Tenant, role, key.KeyId), null);
    }

    /// <summary>
    /// Whether the key a principal was made from still works now (not revoked, its tenant not disabled): for grants that
    /// outlive the request that made them, such as a console ticket, which must die with its key.
    /// </summary>
    public async Task<bool> StillHoldsAsync(ApiPrincipal principal, CancellationToken ct)
    {
        if (principal.KeyId == BootstrapKeyId)
        {
            return true; // the bootstrap admin key is configuration: it holds until the node restarts without it
        }

        var found = await FindAsync(principal.KeyId, ct);
        return found.Key is { IsRevoked: false } key && key.Tenant == principal.Tenant && found.Tenant is { Disabled: false };
    }

    /// <summary>After a revoke or a tenant change made here: look keys up again.</summary>
    public void Forget() => _cache.Clear();

    private async Task<SchedulerReplies.KeyFound> FindAsync(string keyId, CancellationToken ct)
    {
        if (_cache.TryGetValue(keyId, out var cached) && cached.Until > DateTime.UtcNow)
        {
            return cached.Found;
        }

        var found = await _findKey(keyId, ct);
        if (_cache.Count > 10_000)
        {
            _cache.Clear(); // bounded: a flood of made-up ids can't grow it without limit
        }

        _cache[keyId] = (found, DateTime.UtcNow + CacheFor);
        return found;
    }
}
