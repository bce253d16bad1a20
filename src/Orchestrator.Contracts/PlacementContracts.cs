namespace Orchestrator.Contracts;

/// <summary><c>POST /v1/hosts/{id}/labels</c> (admin): labels to set (key → value) and keys to remove.</summary>
public sealed record HostLabelsRequest(IReadOnlyDictionary<string, string>? Set, IReadOnlyList<string>? Remove);

/// <summary><c>POST /v1/groups</c>: a server group of the tenant's; policy is anti-affinity, affinity, soft-anti-affinity or soft-affinity.</summary>
public sealed record CreateGroupRequest(string? Name, string? Policy);

/// <summary>A server group with its members' names.</summary>
public sealed record GroupDto(string Name, string Policy, IReadOnlyList<string> Members, DateTimeOffset CreatedAt);
