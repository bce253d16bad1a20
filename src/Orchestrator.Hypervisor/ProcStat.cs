// Reads CPU time of processes and threads from /proc (what a VcpuActor reports for its vCPU thread).
using System.Globalization;
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor;

/// <summary>Time a thread spent on a CPU, and runnable but waiting for one.</summary>
public sealed record SchedStat(TimeSpan OnCpu, TimeSpan Waiting);

public static partial class ProcStat
{
    private const int ScClkTck = 2; // _SC_CLK_TCK in <unistd.h> (glibc, Linux)

    private static readonly Lazy<long> TicksPerSecond = new(() =>
    {
        var ticks = sysconf(ScClkTck);
        return ticks > 0 ? ticks : 100;
    });

    /// <summary>USER_HZ: the unit of utime/stime in /proc stat files (100 on every mainstream Linux).</summary>
    public static long ClockTicksPerSecond => TicksPerSecond.Value;

    /// <summary>utime+stime of one thread, or null when the thread is gone.</summary>
    public static TimeSpan? ReadThreadCpuTime(int pid, int tid) =>
        ReadCpuTime($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task/{tid.ToString(CultureInfo.InvariantCulture)}/stat");

    /// <summary>utime+stime of a whole process (all its threads), or null when it is gone.</summary>
    public static TimeSpan? ReadProcessCpuTime(int pid) =>
        ReadCpuTime($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");

    /// <summary>Resident memory of a process (VmRSS in /proc/PID/status), in bytes; null when it is gone.</summary>
    public static long? ReadResidentBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
        }

        return null;
    }

    /// <summary>
    /// Resident bytes of the first mapping of exactly <paramref name="sizeBytes"/> in /proc/PID/smaps (a VMM's guest RAM
    /// is one anonymous mapping of the guest's memory size); null when the process is gone or has no such mapping.
    /// </summary>
    public static long? ReadMappingResidentBytes(int pid, long sizeBytes)
    {
        try
        {
            return ParseMappingResidentBytes(File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/smaps"), sizeBytes);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The smaps lines' "Size:" and "Rss:" fields (kB) of each mapping, in order; see <see cref="ReadMappingResidentBytes"/>.</summary>
    public static long? ParseMappingResidentBytes(IEnumerable<string> smapsLines, long sizeBytes)
    {
        var inMatch = false;
        foreach (var line in smapsLines)
        {
            if (line.StartsWith("Size:", StringComparison.Ordinal))
            {
                inMatch = Kilobytes(line) * 1024 == sizeBytes;
            }
            else if (inMatch && line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                return Kilobytes(line) * 1024;
            }
        }

        return null;

        static long Kilobytes(string line) =>
            long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim().TrimEnd("kB").Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// A thread's scheduler statistics (/proc/PID/task/TID/schedstat): nanoseconds on a CPU and nanoseconds runnable
    /// but waiting for one. Their sum over a window is what the thread wanted (its demand), which CPU time alone
    /// cannot show under contention. Null when the thread is gone or the kernel keeps no such statistics.
    /// </summary>
    public static SchedStat? ReadThreadSchedStat(int pid, int tid)
    {
        try
        {
            var text = File.ReadAllText(
                $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task/{tid.ToString(CultureInfo.InvariantCulture)}/schedstat");
            return ParseSchedStat(text);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    public static SchedStat ParseSchedStat(string text)
    {
        var fields = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (fields.Length < 2
            || !long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var onCpu)
            || !long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var waiting))
        {
            throw new FormatException($"not a schedstat line: '{text.Trim()}'");
        }

        return new SchedStat(TimeSpan.FromTicks(onCpu / 100), TimeSpan.FromTicks(waiting / 100));
    }

    /// <summary>Parses utime+stime (fields 14 and 15) out of a stat line.</summary>
    public static TimeSpan ParseCpuTime(string statLine)
    {
        var fields = FieldsAfterComm(statLine);
        // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
        if (fields.Length < 13 ||
            !ulong.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out var utime) ||
            !ulong.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out var stime))
        {
            throw new FormatException($"not a /proc stat line: '{statLine}'");
        }

        return TimeSpan.FromSeconds((double)(utime + stime) / ClockTicksPerSecond);
    }

    /// <summary>The state letter (R, S, D, Z, X…) of a stat line.</summary>
    public static char ParseState(string statLine)
    {
        var fields = FieldsAfterComm(statLine);
        return fields.Length > 0 && fields[0].Length > 0 ? fields[0][0] : '?';
    }

    private static string[] FieldsAfterComm(string statLine)
    {
        // The command name (field 2) is in parentheses and may itself contain spaces and ')': parse after the last.
        var close = statLine.LastIndexOf(')');
        if (close < 0)
        {
            throw new FormatException($"not a /proc stat line: '{statLine}'");
        }

        return statLine[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    private static TimeSpan? ReadCpuTime(string path)
    {
        try
        {
            return ParseCpuTime(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial long sysconf(int name);
}
