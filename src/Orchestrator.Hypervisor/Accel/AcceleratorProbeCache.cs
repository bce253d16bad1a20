// A probe's verdict kept in a file, valid while nothing that could change it has changed: the kernel's boot (a new
// boot can bring another kernel, module options or a host that moved), the hypervisor binary, the probe image and the
// probe's own settings. A host then probes once per boot rather than at every start of its node.
using System.Text.Json;

namespace Orchestrator.Hypervisor.Accel;

public static class AcceleratorProbeCache
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// What the verdict depends on, as one comparable string: the boot id, and the size and modification time of each
    /// file named (a package upgrade replaces the file), plus whatever settings the caller adds.
    /// </summary>
    public static string Key(IEnumerable<string> files, params string[] settings)
    {
        var parts = new List<string> { "boot " + BootId() };
        foreach (var file in files)
        {
            var info = new FileInfo(file);
            parts.Add(info.Exists ? $"{info.FullName} {info.Length} {info.LastWriteTimeUtc.Ticks}" : $"{file} missing");
        }

        parts.AddRange(settings);
        return string.Join("\n", parts);
    }

    /// <summary>The verdict stored in <paramref name="path"/> under <paramref name="key"/>, marked as cached; null when absent, stale or unreadable.</summary>
    public static AcceleratorVerdict? TryRead(string path, string key)
    {
        try
        {
            var entry = JsonSerializer.Deserialize<Entry>(File.ReadAllText(path), Json);
            return entry is { Verdict: not null } && entry.Key == key ? entry.Verdict with { FromCache = true } : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>Stores the verdict atomically (a reader sees the old file or the new one), owner-only. Best effort.</summary>
    public static void Write(string path, string key, AcceleratorVerdict verdict)
    {
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            using (var stream = new FileStream(temporary, new FileStreamOptions
                   {
                       Mode = FileMode.Create,
                       Access = FileAccess.Write,
                       UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                   }))
            {
                JsonSerializer.Serialize(stream, new Entry(key, verdict with { FromCache = false }), Json);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A cache that cannot be written costs one probe at the next start, nothing more.
            try
            {
                File.Delete(temporary);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>
    /// The cached verdict when it is current, else the probe's, stored for next time. A probe cancelled halfway stores
    /// nothing.
    /// </summary>
    public static async Task<AcceleratorVerdict> GetOrProbeAsync(string path, string key, Func<CancellationToken, Task<AcceleratorVerdict>> probe,
        CancellationToken cancellationToken)
    {
        if (TryRead(path, key) is { } cached)
        {
            return cached;
        }

        var verdict = await probe(cancellationToken);
        Write(path, key, verdict);
        return verdict;
    }

    private static string BootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "unknown";
        }
    }

    private sealed record Entry(string Key, AcceleratorVerdict? Verdict);
}
