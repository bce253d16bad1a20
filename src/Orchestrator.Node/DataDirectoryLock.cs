using System.Globalization;

namespace Orchestrator.Node;

/// <summary>
/// One node per data directory: an exclusive lock on DATA/node.lock (flock underneath, so it dies with the
/// process, even under kill -9), holding the owner's pid for the error message.
/// </summary>
public static class DataDirectoryLock
{
    public static FileStream? TryAcquire(string dataDir, out int? holder)
    {
        var path = Path.Combine(dataDir, "node.lock");
        holder = null;
        try
        {
            var stream = Orchestrator.Actors.Settings.OwnerOnlyFiles.Open(path, FileShare.None);
            stream.SetLength(0);
            var pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
            stream.Write(pid);
            stream.Flush();
            return stream;
        }
        catch (IOException)
        {
            // The lock file itself can't be read while held; the running node names itself in node.json.
            holder = Orchestrator.Cli.NodeDiscoveryFiles.TryRead(dataDir)?.Pid;
            return null;
        }
    }
}
