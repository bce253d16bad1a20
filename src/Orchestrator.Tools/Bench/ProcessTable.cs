namespace Orchestrator.Tools.Bench;

/// <summary>Finds processes by their command line in /proc: QEMU guests of a run directory, a node's fence guard.</summary>
public static class ProcessTable
{
    public static IEnumerable<int> Matching(string fragment)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            string cmdline;
            try
            {
                cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (cmdline.Contains(fragment, StringComparison.Ordinal) && IsAlive(pid))
            {
                yield return pid;
            }
        }
    }

    /// <summary>Live QEMU processes whose command line mentions <paramref name="runDir"/>, by VM id (from -name guest=vm-ID).</summary>
    public static IReadOnlyDictionary<string, int> QemuUnder(string runDir)
    {
        var result = new Dictionary<string, int>();
        foreach (var pid in Matching(runDir))
        {
            string[] args;
            try
            {
                args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            }
            catch (IOException)
            {
                continue;
            }

            var name = args.SkipWhile(a => a != "-name").Skip(1).FirstOrDefault();
            if (args[0].Contains("qemu", StringComparison.Ordinal) && name is not null)
            {
                result[name.Split(',')[0].Replace("guest=vm-", "", StringComparison.Ordinal)] = pid;
            }
        }

        return result;
    }

    /// <summary>Exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// In a cgroup v1 freezer group that is frozen: it exists but cannot run (a whole host frozen by a test). A group
    /// still freezing counts as running.
    /// </summary>
    public static bool IsFrozen(int pid)
    {
        try
        {
            var group = File.ReadAllLines($"/proc/{pid}/cgroup").Select(line => line.Split(':', 3))
                .FirstOrDefault(fields => fields.Length == 3 && fields[1] == "freezer")?[2];
            return group is not null && group != "/" &&
                File.ReadAllText($"/sys/fs/cgroup/freezer{group}/freezer.state").Trim() == "FROZEN";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public static void Kill(int pid)
    {
        try
        {
            System.Diagnostics.Process.GetProcessById(pid).Kill();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            // already gone
        }
    }
}
