// The HTTP API's volume shapes (issue 18), written by the API and read by the CLI.
using System.Text.Json.Serialization;

namespace Orchestrator.Contracts;

/// <summary>POST /v1/volumes: a volume of the acting tenant; <see cref="Pool"/> null: the scheduler picks (shared pools first).</summary>
public sealed record CreateVolumeRequest(
    string? Name,
    int? SizeGiB,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Pool = null);

/// <summary>POST /v1/volumes/{name}/resize: the new size, never smaller than the old.</summary>
public sealed record ResizeVolumeRequest(int? SizeGiB);

/// <summary>
/// A volume: its size, its pool, the host whose own pool that is (null on a shared pool: it follows its VM) and the VM it
/// is attached to (its name; null when detached).
/// </summary>
public sealed record VolumeDto(string Id, string Name, string Tenant, int SizeGiB, string Pool, string? Host, string? AttachedTo,
    DateTimeOffset CreatedAt);
