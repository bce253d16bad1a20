using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tenants;

/// <summary>
/// A tenant's webhook: where to POST its events, the secret deliveries are signed with (HMAC-SHA256; shown once
/// when registered), and which event types it wants (empty: all).
/// </summary>
public sealed record WebhookRecord(string Id, TenantId Tenant, string Url, string Secret, IReadOnlyList<string> EventTypes, DateTimeOffset CreatedAt)
{
    public bool Wants(string eventType) => EventTypes.Count == 0 || EventTypes.Contains(eventType, StringComparer.Ordinal);

    public const int MaxPerTenant = 20;

    /// <summary>An absolute http(s) URL without credentials; where it points is checked again at each delivery.</summary>
    public static IEnumerable<FieldError> Validate(string? url, IReadOnlyList<string>? eventTypes, IReadOnlySet<string> knownTypes)
    {
        // Uri.TryCreate trims surrounding whitespace and control characters; the URL kept must be the one checked.
        if (string.IsNullOrEmpty(url) || url.Length > 2048 || url.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)) || !Uri.TryCreate(url, UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment))
        {
            yield return new FieldError("url", "must be an absolute http:// or https:// URL without credentials, fragment, spaces or control characters, at most 2048 characters");
        }

        if (eventTypes is { } types && types.Count > knownTypes.Count)
        {
            // More than there are types: some are unknown or repeated, and one error says so for all of them.
            yield return new FieldError("events", $"at most {knownTypes.Count} event types (there are no more), was {types.Count}");
            yield break;
        }

        foreach (var type in eventTypes ?? [])
        {
            if (!knownTypes.Contains(type))
            {
                yield return new FieldError("events", $"unknown event type '{FieldError.Echo(type)}'");
            }
        }
    }
}
