// The wire format between the node's QEMU driver and the fence guard: one JSON object per line each way.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Guard.Protocol;

public static class GuardOps
{
    /// <summary>Who are you: returns the guard's pid and fence-after.</summary>
    public const string Hello = "hello";

    /// <summary>The node is alive: resets the fence timer. The only op that does.</summary>
    public const string Heartbeat = "heartbeat";

    /// <summary>Start a child (QEMU) with parent-death SIGKILL; returns its pid.</summary>
    public const string Spawn = "spawn";

    /// <summary>SIGKILL one live child of this guard.</summary>
    public const string Kill = "kill";

    /// <summary>The live children.</summary>
    public const string List = "list";

    /// <summary>Whether a child still runs, or its exit code when it has ended.</summary>
    public const string Status = "status";
}

public sealed record GuardRequest
{
    public required string Op { get; init; }
    public string? VmId { get; init; }
    public string[]? Argv { get; init; }
    public string? WorkingDir { get; init; }

    /// <summary>The child's stdout and stderr are appended here (QEMU's error messages).</summary>
    public string? StdoutPath { get; init; }

    public int? Pid { get; init; }
}

public sealed record GuardChild(string VmId, int Pid);

public sealed record GuardResponse
{
    public bool Ok { get; init; }
    public string? Error { get; init; }
    public int? Pid { get; init; }
    public int? GuardPid { get; init; }
    public long? FenceAfterMs { get; init; }
    public GuardChild[]? Children { get; init; }
    public bool? Running { get; init; }
    public int? ExitCode { get; init; }

    public static GuardResponse Failure(string error) => new() { Ok = false, Error = error };
}

public static class GuardProtocol
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = false,
    };
}
