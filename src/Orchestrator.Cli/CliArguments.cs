// What each command line means once parsed: the contract between the syntax and the actions.
namespace Orchestrator.Cli;

public enum OutputFormat
{
    Table,
    Json,
}

/// <summary>Options every client command takes.</summary>
public sealed record ClientArgs(string? Url, string? ApiKey, string? DataDirectory, OutputFormat Output)
{
    public override string ToString() =>
        $"ClientArgs {{ Url = {Url}, ApiKey = {(ApiKey is null ? "null" : "***")}, DataDirectory = {DataDirectory}, Output = {Output} }}";
}

public sealed record VmCreateArgs(
    ClientArgs Client,
    string Name,
    int Vcpus,
    int MemoryMiB,
    string Image,
    string? RestartPolicy,
    bool Wait,
    TimeSpan Timeout,
    VmResourceArgs? Resources = null,
    IReadOnlyDictionary<string, string>? Labels = null,
    string? Driver = null,
    string? Accelerator = null,
    VmBootstrapArgs? Bootstrap = null,
    int? DiskGiB = null,
    IReadOnlyList<string>? HostSelector = null,
    string? Group = null,
    IReadOnlyList<Orchestrator.Contracts.NicRequest>? Nics = null,
    IReadOnlyList<string>? Volumes = null,
    string? FromSnapshot = null);

/// <summary>What the guest is handed at boot, as typed: files are read by the action, never by the parser or the server.</summary>
public sealed record VmBootstrapArgs(string? Hostname, IReadOnlyList<string> SshKeyFiles, string? UserDataFile);

/// <summary>
/// Resource options as typed: null = not given. A <see cref="Cleared"/> field was given as "none" (back to the default).
/// CPU figures are millicores already ("500m" and "0.5" both parse to 500).
/// </summary>
public sealed record VmResourceArgs(
    int? CpuShares = null,
    int? CpuReservationMillicores = null,
    int? CpuLimitMillicores = null,
    int? MemoryReservationMiB = null,
    int? MemoryLimitMiB = null,
    string? Cpuset = null,
    IReadOnlySet<string>? Cleared = null,
    long? DiskIops = null,
    long? DiskBps = null,
    int? DiskShares = null,
    long? NetBps = null,
    int? NetShares = null)
{
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsEmpty => ToPatch().Count == 0;

    /// <summary>The API's merge patch: given fields, and null for cleared ones.</summary>
    public Dictionary<string, object?> ToPatch()
    {
        var patch = new Dictionary<string, object?>(StringComparer.Ordinal);
        void Put(string field, object? value)
        {
            if (value is not null)
            {
                patch[field] = value;
            }
            else if (Cleared?.Contains(field) == true)
            {
                patch[field] = null;
            }
        }

        Put("cpuShares", CpuShares);
        Put("cpuReservationMillicores", CpuReservationMillicores);
        Put("cpuLimitMillicores", CpuLimitMillicores);
        Put("memoryReservationMiB", MemoryReservationMiB);
        Put("memoryLimitMiB", MemoryLimitMiB);
        Put("cpuset", Cpuset);
        Put("diskIops", DiskIops);
        Put("diskBps", DiskBps);
        Put("diskShares", DiskShares);
        Put("netBps", NetBps);
        Put("netShares", NetShares);
        return patch;
    }
}

public sealed record VmSetArgs(ClientArgs Client, string Name, VmResourceArgs Resources);

public sealed record VmShowArgs(ClientArgs Client, string Name);

public sealed record HostShowArgs(ClientArgs Client, string Id);

/// <summary><c>vm console NAME [--force]</c>: attach the terminal to the VM's serial console.</summary>
public sealed record VmConsoleArgs(ClientArgs Client, string Name, bool Force);

public enum VmChange
{
    Stop,
    Start,
    Delete,

    /// <summary>Stop running guest code, keeping memory; done when every vCPU acknowledged (no --wait).</summary>
    Pause,
    Resume,
}

public sealed record VmChangeArgs(ClientArgs Client, VmChange Change, string Name, bool Wait, TimeSpan Timeout, bool WithVolumes = false);

public enum ListKind
{
    Vms,
    Hosts,
    Images,
}

public sealed record ListArgs(ClientArgs Client, ListKind Kind);

/// <summary><c>apply -f FILE</c>: the file's full path (read by the client; the server never opens files).</summary>
public sealed record ApplyArgs(ClientArgs Client, string File, bool DryRun, bool Prune);

/// <summary><c>image import NAME --file F</c>: the file's full path (read by the client and streamed to the node).</summary>
public sealed record ImageImportArgs(ClientArgs Client, string Name, string File, string Format, string Kernel, bool Public);

/// <summary>What the parsed commands call; the syntax (<see cref="CliSyntax"/>) knows nothing else.</summary>
public interface ICliActions
{
    Task<int> ImageImportAsync(ImageImportArgs args, CancellationToken ct);

    Task<int> VmCreateAsync(VmCreateArgs args, CancellationToken ct);

    Task<int> VmShowAsync(VmShowArgs args, CancellationToken ct);

    Task<int> HostShowAsync(HostShowArgs args, CancellationToken ct);

    Task<int> VmSetAsync(VmSetArgs args, CancellationToken ct);

    /// <summary>A plain API call (tenants, keys): send, then show the answer.</summary>
    Task<int> CallAsync(ApiCallArgs args, CancellationToken ct);

    Task<int> VmChangeAsync(VmChangeArgs args, CancellationToken ct);

    Task<int> ListAsync(ListArgs args, CancellationToken ct);

    Task<int> ApplyAsync(ApplyArgs args, CancellationToken ct);
    Task<int> EventsAsync(EventsArgs args, CancellationToken ct);

    Task<int> VmConsoleAsync(VmConsoleArgs args, CancellationToken ct);
}
