// Reads and writes cgroup control files: one write(2) per value, errors with the path and the kernel's reason.
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Orchestrator.Hypervisor.Cgroups;

internal static partial class CgroupFiles
{
    private const int OWronly = 0x1;      // O_WRONLY
    private const int OCreat = 0x40;      // O_CREAT
    private const int OTrunc = 0x200;     // O_TRUNC
    private const int OCloexec = 0x80000; // O_CLOEXEC
    private const int Enoent = 2;
    private const int Eintr = 4;
    private const int Eacces = 13;
    private const int Ebusy = 16;
    private const int Enotempty = 39;

    /// <summary>
    /// Writes a value in one write(2), as the kernel wants control files written. O_CREAT|O_TRUNC are no-ops
    /// on cgroupfs, and let the same code fill a plain directory standing in for one in tests.
    /// </summary>
    public static void Write(string path, string value)
    {
        // The kernel strips whitespace; an empty write may never reach the handler, so "" becomes "\n".
        var bytes = Encoding.ASCII.GetBytes(value.Length == 0 ? "\n" : value);
        var fd = open(path, OWronly | OCreat | OTrunc | OCloexec, 0b110_100_100);
        if (fd < 0)
        {
            throw Failure("open", path, value, Marshal.GetLastPInvokeError());
        }

        try
        {
            nint written;
            int errno;
            do
            {
                unsafe
                {
                    // Safe: the array is pinned for the call and its length is passed with it.
                    fixed (byte* buffer = bytes)
                    {
                        written = write(fd, buffer, (nuint)bytes.Length);
                    }
                }

                errno = written < 0 ? Marshal.GetLastPInvokeError() : 0;
            }
            while (written < 0 && errno == Eintr);

            if (written < 0)
            {
                throw Failure("write", path, value, errno);
            }

            if (written != bytes.Length)
            {
                throw new HypervisorException($"cannot write '{value}' to {path}: the kernel took {written} of {bytes.Length} bytes");
            }
        }
        finally
        {
            _ = close(fd);
        }
    }

    public static void Write(string path, long value) => Write(path, value.ToString(CultureInfo.InvariantCulture));

    /// <summary>The file's text, trimmed; null when it (or its cgroup) is gone.</summary>
    public static string? ReadOrNull(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (IOException ex)
        {
            throw new HypervisorException($"cannot read {path}: {ex.Message}", ex);
        }
    }

    public static string Read(string path) =>
        ReadOrNull(path) ?? throw new HypervisorException($"cannot read {path}: it does not exist");

    /// <summary>The pids in a cgroup.procs file; empty when the cgroup is gone.</summary>
    public static IReadOnlyList<int> ReadPids(string path)
    {
        var text = ReadOrNull(path);
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        var pids = new List<int>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                pids.Add(pid);
            }
        }

        return pids;
    }

    public static void CreateDirectory(string path)
    {
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new HypervisorException($"cannot create cgroup {path}: {ex.Message}", ex);
        }
    }

    public enum RemoveResult
    {
        Removed,
        Busy,
        NotEmpty,
    }

    /// <summary>rmdir: a cgroup directory goes with its control files, but not while tasks or child cgroups remain.</summary>
    public static RemoveResult RemoveDirectory(string path)
    {
        if (rmdir(path) == 0)
        {
            return RemoveResult.Removed;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno switch
        {
            Enoent => RemoveResult.Removed,
            Ebusy => RemoveResult.Busy,
            Enotempty => RemoveResult.NotEmpty,
            _ => throw Failure("remove", path, null, errno),
        };
    }

    private static HypervisorException Failure(string what, string path, string? value, int errno)
    {
        var reason = $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
        if (value is null)
        {
            return new HypervisorException($"cannot {what} {path}: {reason}");
        }

        // A missing control file usually means the controller is not enabled for this cgroup.
        var hint = what == "open" && errno is Enoent or Eacces ? " (is the controller enabled for this cgroup?)" : "";
        return new HypervisorException($"cannot write '{value.Trim()}' to {path}: {reason}{hint}");
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rmdir(string path);
}
