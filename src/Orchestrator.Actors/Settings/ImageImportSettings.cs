using Akka.Configuration;

namespace Orchestrator.Actors.Settings;

/// <summary>
/// <c>orchestrator.images-import</c>: where imported images live (<see cref="Store"/>, files named by image id) and how big
/// an upload (<see cref="MaxBytes"/>) and the disk it describes (<see cref="MaxVirtualBytes"/>) may be.
/// </summary>
public sealed record ImageImportSettings(string Store, long MaxBytes, long MaxVirtualBytes)
{
    /// <summary>4 GiB uploaded at most: a cloud image is a few hundred MiB.</summary>
    public const long DefaultMaxBytes = 4L << 30;

    /// <summary>64 GiB of virtual disk at most: a sparse qcow2 can describe far more than it weighs.</summary>
    public const long DefaultMaxVirtualBytes = 64L << 30;

    public static ImageImportSettings Default(string dataDir) => new(Path.Combine(dataDir, "images"), DefaultMaxBytes, DefaultMaxVirtualBytes);

    /// <exception cref="ConfigurationException">a limit that is not positive.</exception>
    public static ImageImportSettings Create(Config? c, string dataDir)
    {
        var store = c?.GetString("store", "") is { Length: > 0 } configured ? Path.GetFullPath(configured, dataDir) : Path.Combine(dataDir, "images");
        var maxBytes = c?.GetLong("max-bytes", DefaultMaxBytes) ?? DefaultMaxBytes;
        var maxVirtual = c?.GetLong("max-virtual-bytes", DefaultMaxVirtualBytes) ?? DefaultMaxVirtualBytes;
        return maxBytes < 1 || maxVirtual < 1
            ? throw new ConfigurationException($"orchestrator.images-import.max-bytes and max-virtual-bytes must be 1 or more, were {maxBytes} and {maxVirtual}")
            : new ImageImportSettings(store, maxBytes, maxVirtual);
    }

    /// <summary>Where the image's file is (its name from its id and format only).</summary>
    public string PathOf(Orchestrator.Domain.Storage.ImageDisk image) => Path.Combine(Store, image.FileName);
}
