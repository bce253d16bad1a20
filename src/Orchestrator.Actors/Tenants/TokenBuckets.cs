using Akka.Actor;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Tenants;

/// <summary>
/// A token bucket per key (a tenant, a client address): refilled at <c>perSecond</c>, holding up to <c>burst</c>. A key
/// whose bucket is full again carries no state, so that is what is dropped when there are many keys.
/// </summary>
public sealed class TokenBuckets
{
    /// <summary>Past this many keys, full buckets are dropped (and all of them, if none is full).</summary>
    public const int MaxKeys = 100_000;

    private readonly object _gate = new();
    private readonly Dictionary<string, (double Tokens, long At)> _buckets = new(StringComparer.Ordinal);
    private readonly TimeProvider _clock;

    /// <param name="clock">the system's clock, unless a test holds time still.</param>
    public TokenBuckets(int perSecond, int burst, TimeProvider? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        PerSecond = perSecond;
        Burst = burst;
        _clock = clock ?? TimeProvider.System;
    }

    public int PerSecond { get; }
    public int Burst { get; }

    /// <summary>Takes a token from <paramref name="key"/>'s bucket; false, and how long until there is one, when it is empty.</summary>
    public bool TryTake(string key, out TimeSpan retryAfter)
    {
        var now = _clock.GetTimestamp();
        lock (_gate)
        {
            var tokens = _buckets.TryGetValue(key, out var bucket) ? Level(bucket, now) : Burst;
            retryAfter = tokens >= 1 ? TimeSpan.Zero : TimeSpan.FromSeconds((1 - tokens) / PerSecond);
            if (tokens >= 1)
            {
                tokens--;
            }

            if (!_buckets.ContainsKey(key) && _buckets.Count >= MaxKeys)
            {
                Sweep(now);
            }

            _buckets[key] = (tokens, now);
            return retryAfter == TimeSpan.Zero;
        }
    }

    /// <summary>Whole seconds to wait, at least 1: the value of a Retry-After header.</summary>
    public static int RetryAfterSeconds(TimeSpan wait) => Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));

    private double Level((double Tokens, long At) bucket, long now) =>
        Math.Min(Burst, bucket.Tokens + _clock.GetElapsedTime(bucket.At, now).TotalSeconds * PerSecond);

    private void Sweep(long now)
    {
        foreach (var full in _buckets.Where(kv => Level(kv.Value, now) >= Burst).Select(kv => kv.Key).ToList())
        {
            _buckets.Remove(full);
        }

        if (_buckets.Count >= MaxKeys)
        {
            _buckets.Clear(); // bounded, whatever the callers: a flood of keys costs them their partial buckets, no more
        }
    }
}

/// <summary>
/// Each tenant's request budget on this node (<c>orchestrator.api.rate-limit</c>): what the API takes a token from for
/// every request and the rule engine for every rule that fires, so automation cannot do more than its tenant could
/// ask for.
/// </summary>
public sealed class TenantBudget : IExtension
{
    public TenantBudget(ApiLimits limits, TimeProvider? clock = null)
    {
        Limits = limits;
        Buckets = new TokenBuckets(limits.RequestsPerSecond, limits.Burst, clock);
    }

    public ApiLimits Limits { get; }

    public TokenBuckets Buckets { get; }

    public bool TryTake(TenantId tenant, out TimeSpan retryAfter) => Buckets.TryTake(tenant.Value, out retryAfter);

    public static TenantBudget Get(ActorSystem system) => system.WithExtension<TenantBudget, TenantBudgetProvider>();
}

public sealed class TenantBudgetProvider : ExtensionIdProvider<TenantBudget>
{
    public override TenantBudget CreateExtension(ExtendedActorSystem system) =>
        new(ApiLimits.Create(system.Settings.Config.GetConfig("orchestrator.api")));
}
