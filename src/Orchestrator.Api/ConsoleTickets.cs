using System.Collections.Concurrent;
using System.Security.Cryptography;
using Orchestrator.Domain;

namespace Orchestrator.Api;

/// <summary>
/// Short-lived, single-use permissions to open one VM's console. A browser's WebSocket cannot send the key's header,
/// and the key must never travel in a URL (logs, history): the page asks for a ticket with its key and opens the
/// socket with the ticket, which is worthless once used or after <see cref="Lifetime"/>.
/// </summary>
public sealed class ConsoleTickets(TimeProvider clock)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    /// <summary>The most tickets outstanding at once; past it, the oldest are dropped (a client asking in a loop grows nothing).</summary>
    public const int MaxOutstanding = 10_000;

    private readonly ConcurrentDictionary<string, ConsoleTicket> _tickets = new(StringComparer.Ordinal);

    public string Issue(ApiPrincipal principal, TenantId tenant, string vmName)
    {
        var now = clock.GetUtcNow();
        if (_tickets.Count >= MaxOutstanding)
        {
            Prune(now);
        }

        var value = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _tickets[value] = new ConsoleTicket(principal, tenant, vmName, now + Lifetime);
        return value;
    }

    /// <summary>The ticket's grant, once: a second redeem, or one after it expired, finds nothing.</summary>
    public ConsoleTicket? Redeem(string value) =>
        _tickets.TryRemove(value, out var ticket) && ticket.Expires > clock.GetUtcNow() ? ticket : null;

    /// <summary>Drops the expired tickets, and the older half when that is not enough.</summary>
    private void Prune(DateTimeOffset now)
    {
        foreach (var (value, ticket) in _tickets)
        {
            if (ticket.Expires <= now)
            {
                _tickets.TryRemove(value, out _);
            }
        }

        if (_tickets.Count >= MaxOutstanding)
        {
            foreach (var value in _tickets.OrderBy(t => t.Value.Expires).Take(MaxOutstanding / 2).Select(t => t.Key).ToList())
            {
                _tickets.TryRemove(value, out _);
            }
        }
    }
}

/// <summary>Who may attach to which VM (by the name the key's tenant knows it by), until when.</summary>
public sealed record ConsoleTicket(ApiPrincipal Principal, TenantId Tenant, string VmName, DateTimeOffset Expires);
