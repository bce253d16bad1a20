// Is a pid still our QEMU? Pids get reused, so a pid alone proves nothing: the command line must name the VM.
using System.Globalization;

namespace Orchestrator.Hypervisor.Qemu;

internal static class ProcessProbe
{
    /// <summary>True when <paramref name="pid"/> runs (not a zombie) with <paramref name="marker"/> in an argument.</summary>
    public static bool IsAlive(int pid, string marker)
    {
        if (pid <= 0)
        {
            return false;
        }

        var proc = "/proc/" + pid.ToString(CultureInfo.InvariantCulture);
        // A process in the middle of execve (setpriv -> sh -> qemu) briefly shows an empty command line: the new
        // address space is in place before its arguments are. Look again rather than call it dead.
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                var state = ProcStat.ParseState(File.ReadAllText(proc + "/stat"));
                if (state is 'Z' or 'X' or 'x')
                {
                    return false;
                }

                var cmdline = File.ReadAllText(proc + "/cmdline");
                if (cmdline.Length > 0)
                {
                    return cmdline.Split('\0').Any(arg => arg.Contains(marker, StringComparison.Ordinal));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                return false;
            }

            Thread.Sleep(2);
        }

        // Still empty after ~100 ms: a kernel thread that took over the pid, not our QEMU.
        return false;
    }
}
