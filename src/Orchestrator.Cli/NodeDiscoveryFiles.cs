// The files a running node leaves in its data directory so that a client finds it without flags.
using System.Text.Json;

namespace Orchestrator.Cli;

/// <summary>What <see cref="NodeDiscoveryFiles.TryRead"/> found: the node's URL and pid, and the admin key if readable.</summary>
public sealed record NodeDiscovery(string Url, int Pid, string? AdminKey)
{
    // A record prints every member; the key must never reach a log or a test failure message.
    public override string ToString() =>
        $"NodeDiscovery {{ Url = {Url}, Pid = {Pid}, AdminKey = {(AdminKey is null ? "null" : "***")} }}";
}

/// <summary>
/// <c>DATA/node.json</c> = <c>{"url":"http://127.0.0.1:7480","pid":1234}</c> and <c>DATA/admin.key</c>
/// (one line), both mode 0600. The node writes them once it listens; the client reads them.
/// </summary>
public static class NodeDiscoveryFiles
{
    public const string NodeFileName = "node.json";
    public const string AdminKeyFileName = "admin.key";

    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private sealed record NodeFile(string Url, int Pid);

    /// <summary>
    /// Writes <c>admin.key</c> (0600) then <c>node.json</c>, each atomically (temp file + rename), creating
    /// <paramref name="dataDir"/> (0700) if it is missing. Call it after the HTTP listener is bound, with the
    /// real URL (port 0 resolved), so a client that sees node.json can connect.
    /// </summary>
    public static async Task WriteAsync(string dataDir, string url, int pid, string adminKey, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDir);
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        ArgumentException.ThrowIfNullOrWhiteSpace(adminKey);
        if (adminKey.Contains('\n') || adminKey.Contains('\r'))
        {
            throw new ArgumentException("the admin key must be one line", nameof(adminKey));
        }

        if (!Directory.Exists(dataDir))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(dataDir);
            }
            else
            {
                Directory.CreateDirectory(dataDir, OwnerOnlyDirectory);
            }
        }

        await WriteAtomicallyAsync(Path.Combine(dataDir, AdminKeyFileName), adminKey + "\n", ct).ConfigureAwait(false);
        var json = JsonSerializer.Serialize(new NodeFile(url, pid), Json);
        // node.json says only where the node listens, but the data dir's files are its owner's alone, like the rest.
        await WriteAtomicallyAsync(Path.Combine(dataDir, NodeFileName), json + "\n", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads what a node left in <paramref name="dataDir"/>; null when there is no readable, well-formed node.json.
    /// <see cref="NodeDiscovery.AdminKey"/> is null when admin.key is missing or unreadable.
    /// </summary>
    public static NodeDiscovery? TryRead(string dataDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDir);

        NodeFile? node;
        try
        {
            node = JsonSerializer.Deserialize<NodeFile>(File.ReadAllText(Path.Combine(dataDir, NodeFileName)), Json);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }

        if (node is null || string.IsNullOrWhiteSpace(node.Url))
        {
            return null;
        }

        string? key = null;
        try
        {
            key = File.ReadAllText(Path.Combine(dataDir, AdminKeyFileName)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return new NodeDiscovery(node.Url, node.Pid, string.IsNullOrEmpty(key) ? null : key);
    }

    /// <summary>
    /// Removes node.json when the node stops, but only if it still names <paramref name="pid"/> (another node
    /// may have taken the directory over since). admin.key stays: it is the node's credential, not a status.
    /// </summary>
    public static void Remove(string dataDir, int pid)
    {
        if (TryRead(dataDir) is { } found && found.Pid == pid)
        {
            try
            {
                File.Delete(Path.Combine(dataDir, NodeFileName));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private static async Task WriteAtomicallyAsync(string path, string content, CancellationToken ct)
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                // Created 0600 from the first byte: no window in which another user can read it.
                options.UnixCreateMode = OwnerOnlyFile;
            }

            await using (var stream = new FileStream(temp, options))
            await using (var writer = new StreamWriter(stream))
            {
                await writer.WriteAsync(content.AsMemory(), ct).ConfigureAwait(false);
                await writer.FlushAsync(ct).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows())
            {
                // UnixCreateMode is filtered by the umask; make the mode exact.
                File.SetUnixFileMode(temp, OwnerOnlyFile);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }

            throw;
        }
    }
}
