namespace Orchestrator.Actors.Settings;

/// <summary>
/// The node's data files (journal database, its WAL and shared memory, the secrets key, the lock) are its owner's
/// only: mode 0600, set at creation rather than after, and narrowed on files an older version left wider.
/// </summary>
public static class OwnerOnlyFiles
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates <paramref name="path"/> with <paramref name="content"/>, 0600 from its first byte; IOException when it exists.</summary>
    public static void WriteNew(string path, string content)
    {
        using (var stream = new FileStream(path, Options(FileMode.CreateNew, FileAccess.Write)))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(content);
        }

        Restrict(path);
    }

    /// <summary>Opens (creating when missing) <paramref name="path"/> for reading and writing, 0600.</summary>
    public static FileStream Open(string path, FileShare share)
    {
        var stream = new FileStream(path, Options(FileMode.OpenOrCreate, FileAccess.ReadWrite, share));
        Restrict(path);
        return stream;
    }

    /// <summary>Makes sure <paramref name="path"/> exists and is 0600 (an empty file when it was missing).</summary>
    public static void Ensure(string path)
    {
        new FileStream(path, Options(FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete)).Dispose();
        Restrict(path);
    }

    /// <summary>Narrows <paramref name="path"/> to 0600 when it exists (the umask filters the mode a file is created with).</summary>
    public static void Restrict(string path)
    {
        if (!OperatingSystem.IsWindows() && File.Exists(path) && File.GetUnixFileMode(path) != Mode)
        {
            File.SetUnixFileMode(path, Mode);
        }
    }

    private static FileStreamOptions Options(FileMode mode, FileAccess access, FileShare share = FileShare.None)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = share };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = Mode;
        }

        return options;
    }
}
