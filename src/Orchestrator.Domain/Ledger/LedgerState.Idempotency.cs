// Durable Idempotency-Keys on VM creates (issue 21): the key is journaled with the VM it made, in the same event, so a
// client that retries after a node restart or a scheduler failover gets that VM again rather than a second one or 409.
using System.Collections.Immutable;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Ledger;

/// <summary>
/// A create's Idempotency-Key as the API hands it to the ledger: digests only, never the key or the body themselves.
/// </summary>
/// <param name="Key">a digest of who asked (the caller's and the acting tenant), the route and the key they sent.</param>
/// <param name="BodyHash">a digest of the request's body: the same key with another body is a different request.</param>
public sealed record IdempotencyToken(string Key, string BodyHash);

/// <summary>What a key made, and when: kept for <see cref="LedgerState.IdempotencyKeptFor"/>.</summary>
public sealed record IdempotencyRecord(IdempotencyToken Token, VmId VmId, DateTimeOffset At);

public sealed partial record LedgerState
{
    /// <summary>How long a key answers retries (a day, as Stripe's); after that it is forgotten and may be used again.</summary>
    public static readonly TimeSpan IdempotencyKeptFor = TimeSpan.FromHours(24);

    /// <summary>Keys of the last day's creates by key digest.</summary>
    public ImmutableDictionary<string, IdempotencyRecord> IdempotencyKeys { get; init; } =
        ImmutableDictionary<string, IdempotencyRecord>.Empty;

    /// <summary>The same keys oldest first, so that expiry looks at the few due rather than all.</summary>
    private ImmutableQueue<IdempotencyRecord> IdempotencyByAge { get; init; } = ImmutableQueue<IdempotencyRecord>.Empty;

    /// <summary>The state with these keys (from a snapshot).</summary>
    public LedgerState WithIdempotencyKeys(IEnumerable<IdempotencyRecord> records)
    {
        var ordered = records.OrderBy(r => r.At).ToList();
        return this with
        {
            IdempotencyKeys = ordered.ToImmutableDictionary(r => r.Token.Key, StringComparer.Ordinal),
            IdempotencyByAge = ImmutableQueue.CreateRange(ordered),
        };
    }

    /// <summary>The VM an earlier create with this token made, if the key is still kept.</summary>
    public VmId? VmCreatedBy(IdempotencyToken? token, DateTimeOffset now) =>
        token is not null && IdempotencyKeys.TryGetValue(token.Key, out var earlier) && now - earlier.At <= IdempotencyKeptFor
            ? earlier.VmId
            : null;

    /// <summary>
    /// A retried create: nothing to do when the key made a VM that still exists (the reply shows it); refused when
    /// the body differs or that VM was deleted since. Null: the key is new (or expired), so the create is decided.
    /// </summary>
    private Decision? DecideRetriedCreate(LedgerCommands.CreateVm c, DateTimeOffset now)
    {
        if (VmCreatedBy(c.Idempotency, now) is not { } earlier)
        {
            return null;
        }

        if (IdempotencyKeys[c.Idempotency!.Key].Token.BodyHash != c.Idempotency.BodyHash)
        {
            return Decision.Refuse(Refusal.KeyReused("this Idempotency-Key was used with another body; use a new key for a new request"));
        }

        return Vms.ContainsKey(earlier)
            ? Decision.Nothing
            : Decision.Refuse(Refusal.Conflict("Idempotency-Key", "the VM created with this Idempotency-Key has been deleted since"));
    }

    /// <summary>Keeps the key of a create that carried one, and forgets the keys older than a day.</summary>
    private LedgerState WithIdempotency(ILedgerEvent evt, LedgerState next)
    {
        if (evt is not VmRequested { Idempotency: { } token } requested)
        {
            return next;
        }

        var keys = next.IdempotencyKeys;
        var byAge = next.IdempotencyByAge;
        while (!byAge.IsEmpty && requested.At - byAge.Peek().At > IdempotencyKeptFor)
        {
            var due = byAge.Peek();
            byAge = byAge.Dequeue();
            if (keys.TryGetValue(due.Token.Key, out var kept) && ReferenceEquals(kept, due))
            {
                keys = keys.Remove(due.Token.Key);
            }
        }

        var record = new IdempotencyRecord(token, requested.VmId, requested.At);
        return next with { IdempotencyKeys = keys.SetItem(token.Key, record), IdempotencyByAge = byAge.Enqueue(record) };
    }
}
