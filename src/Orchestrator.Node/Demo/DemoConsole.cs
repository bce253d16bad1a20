using System.Globalization;

namespace Orchestrator.Node.Demo;

/// <summary>
/// What <c>orchestrator demo</c> shows a person on the terminal: where the node is, what runs its VMs, each demo VM's
/// create → ready time, and what to try next. The full log goes to a file in the data directory instead.
/// </summary>
/// <param name="output">the summary (stdout).</param>
/// <param name="error">failures (stderr).</param>
public sealed class DemoConsole(TextWriter output, TextWriter error)
{
    private readonly Lock _lock = new();

    /// <param name="logFile">where the full log goes; null: nowhere but the console.</param>
    public void NodeUp(string hostId, string apiUrl, string dataDir, string? logFile)
    {
        Line(output, $"node {hostId} up: API {apiUrl}, data {dataDir}");
        Line(output, $"  dashboard: {apiUrl.TrimEnd('/')}/ (sign in with the admin key in {Path.Combine(dataDir, "admin.key")})");
        if (logFile is not null)
        {
            Line(output, $"  full log: {logFile}");
        }
    }

    /// <summary>
    /// What runs the VMs, in one line. The node passes the driver and its accelerator setting for now; the
    /// accelerator probe's verdict (KVM usable, or why TCG) belongs here once it exists.
    /// </summary>
    public void Accelerator(string line) => Line(output, $"accelerator: {line}");

    public void VmReady(string name, TimeSpan createToReady) =>
        Line(output, $"{name} ready in {createToReady.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)} s (create → ready)");

    /// <summary>A demo VM left by an earlier run that is still running (a restarted node adopted it).</summary>
    public void VmRunning(string name) => Line(output, $"{name} ready (running since an earlier start)");

    /// <summary>The demo network, and what each VM's ping of demo-1 gave.</summary>
    public void Network(string line) => Line(output, line);

    public void VmFailed(string name, string reason) => Line(error, $"{name} failed: {reason}");

    /// <summary>The last line before the node stops because the demo could not run.</summary>
    public void Stopping(string why) => Line(error, $"stopping the node: {why}");

    /// <param name="dataFlag">what the client commands need to find this node (<c> --data DIR</c>), or "".</param>
    public void NextSteps(string dataFlag, TimeSpan fenceAfter)
    {
        lock (_lock)
        {
            output.WriteLine();
            output.WriteLine("Try, in another terminal:");
            foreach (var command in new[]
                     {
                         "vm list",
                         "vm show demo-1",
                         "vm create web1 --vcpus 1 --memory 256 --image demo --wait",
                         "vm pause demo-1",
                         "vm resume demo-1",
                         "vm delete web1 --wait",
                         "events --follow",
                     })
            {
                output.WriteLine($"  ./orchestrator {command}{dataFlag}");
            }

            output.WriteLine(
                $"Ctrl-C stops the node; its VMs keep running for fence-after ({fenceAfter.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s), so that a node started again adopts them.");
            output.Flush();
        }
    }

    private void Line(TextWriter writer, string text)
    {
        lock (_lock)
        {
            writer.WriteLine(text);
            writer.Flush();
        }
    }
}
