// The HTTP API's snapshot shapes (issue 18), written by the API and read by the CLI.
namespace Orchestrator.Contracts;

/// <summary>POST /v1/vms/{name}/snapshots: a snapshot of the VM's disk under this name.</summary>
public sealed record CreateSnapshotRequest(string? Name);

/// <summary>
/// A snapshot of a VM's disk: charged <see cref="SizeGiB"/> (its VM's disk size), in <see cref="Pool"/> (on <see cref="Host"/>
/// when that pool is the host's own). <see cref="Ready"/> once the VM writes to its next layer; a clone needs it ready.
/// </summary>
public sealed record SnapshotDto(string Id, string Name, string Vm, string Tenant, int SizeGiB, string Pool, string? Host, bool Ready,
    DateTimeOffset CreatedAt);
